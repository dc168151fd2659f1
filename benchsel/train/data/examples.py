"""The one form of a training example (chat messages, the gold answer as compact JSON) and writing
examples as JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from benchsel.errors import UsageError

if TYPE_CHECKING:
    from benchsel.evalset import Case, Prompt


Format = Literal["auto", "chat", "sharegpt", "alpaca", "evalset"]


FORMATS: tuple[str, ...] = ("chat", "sharegpt", "alpaca", "evalset")


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Example:
    """One conversation; the last message is the assistant answer the loss is computed on."""

    messages: tuple[Message, ...]
    source: str
    id: str
    text: str | None = None

    @property
    def answer(self) -> str:
        return self.messages[-1].content

    @property
    def input_text(self) -> str:
        """The text the answer is about: ``text`` when known, else the last user message."""
        if self.text is not None:
            return self.text
        users = [m.content for m in self.messages[:-1] if m.role == "user"]
        return users[-1] if users else ""

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id, "messages": [m.as_dict() for m in self.messages]}
        record["source"] = self.source
        if self.text is not None:
            record["text"] = self.text
        return record


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def case_example(case: Case, prompt: Prompt, source: str) -> Example:
    """An eval-set case as a conversation: the eval set's prompt, the gold as compact JSON."""
    answer = compact_json(case.gold.model_dump(exclude_none=True))
    return example_from_messages(
        case.id, source, [*prompt.messages(case.text), assistant_message(answer)], case.text
    )


def write_jsonl(items: Iterable[Example | Case | Mapping[str, Any]], path: str | Path) -> Path:
    """Write examples (chat-messages records), eval-set cases or plain records, one per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for item in items:
            out.write(json.dumps(_record(item), ensure_ascii=False) + "\n")
    return path


def _record(item: Example | Case | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(item, Example):
        return item.as_record()
    if isinstance(item, Mapping):
        return item
    dump: dict[str, Any] = item.model_dump(exclude_none=True)
    return dump


def assistant_message(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def example_from_messages(
    ident: str, source: str, messages: list[dict[str, str]], text: str | None, where: str = ""
) -> Example:
    if messages[-1]["role"] != "assistant":
        role = messages[-1]["role"]
        raise UsageError(
            f"{where or ident}: the last message must be the assistant's answer, got role {role!r} - "
            "end each conversation with the answer to train on"
        )
    if not messages[-1]["content"].strip():
        raise UsageError(f"{where or ident}: the assistant answer is empty - drop the record or fill it")
    msgs = tuple(Message(m["role"], m["content"]) for m in messages)
    return Example(messages=msgs, source=source, id=ident, text=text)
