"""Reading training data in the common formats: chat-messages JSONL, ShareGPT, Alpaca and eval-set
cases, each record into an Example."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel import jsonio
from benchsel.errors import UsageError
from benchsel.train.data.examples import (
    FORMATS,
    Example,
    Format,
    assistant_message,
    case_example,
    example_from_messages,
)

if TYPE_CHECKING:
    from benchsel.evalset import Prompt


def load_examples(path: str | Path, fmt: Format = "auto", prompt: Prompt | None = None) -> list[Example]:
    """Read a JSONL (or JSON array) file of training examples in one of :data:`FORMATS`."""
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise UsageError(f"unknown training-data format {fmt!r}: use auto or one of {', '.join(FORMATS)}")
    examples: list[Example] = []
    chosen: str | None = None if fmt == "auto" else fmt
    for where, record in jsonio.read_records(path, missing="give the path of a JSONL training-data file"):
        if chosen is None:
            chosen = detect_format(record, where)
        examples.append(_convert(chosen, record, where, prompt, f"{path.name}:{len(examples) + 1}"))
    if not examples:
        raise UsageError(f"{path}: holds no training examples - give a JSONL file, one example per line")
    return examples


def detect_format(record: Mapping[str, Any], where: str) -> str:
    if "messages" in record:
        return "chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "text" in record and "gold" in record:
        return "evalset"
    fields = ", ".join(sorted(record)) or "none"
    raise UsageError(
        f"{where}: cannot tell the format from the fields ({fields}): expected 'messages' (chat), "
        "'conversations' (ShareGPT), 'instruction'+'output' (Alpaca) or 'id'+'text'+'gold' (eval set); "
        "fix the record or name the format with fmt= (--format)"
    )


def _convert(fmt: str, rec: dict[str, Any], where: str, prompt: Prompt | None, fallback_id: str) -> Example:
    ident = str(rec.get("id") or fallback_id)
    source = str(rec.get("source") or fmt)
    text = rec.get("text") if isinstance(rec.get("text"), str) else None
    if fmt == "chat":
        return example_from_messages(
            ident, source, _messages(rec, "messages", "role", "content", where), text, where
        )
    if fmt == "sharegpt":
        return example_from_messages(ident, source, _sharegpt(rec, where), text, where)
    if fmt == "alpaca":
        return example_from_messages(ident, source, _alpaca(rec, where), text, where)
    return _evalset_case(rec, where, prompt, source)


def _messages(rec: Mapping[str, Any], key: str, role: str, content: str, where: str) -> list[dict[str, str]]:
    items = rec.get(key)
    if not isinstance(items, list) or not items:
        raise UsageError(f"{where}: '{key}' must be a non-empty list of messages")
    out = []
    for i, item in enumerate(items):
        ok = isinstance(item, dict) and isinstance(item.get(role), str) and isinstance(item.get(content), str)
        if not ok:
            raise UsageError(f"{where}: {key}[{i}] needs string '{role}' and '{content}' fields")
        out.append({"role": item[role], "content": item[content]})
    return out


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "model": "assistant"}  # fmt: skip


def _sharegpt(rec: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    out = []
    for i, msg in enumerate(_messages(rec, "conversations", "from", "value", where)):
        role = _SHAREGPT_ROLES.get(msg["role"])
        if role is None:
            raise UsageError(f"{where}: conversations[{i}].from is {msg['role']!r}, use human, gpt or system")
        out.append({"role": role, "content": msg["content"]})
    return out


def _alpaca(rec: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    fields = {k: rec.get(k, "") for k in ("instruction", "input", "output", "system")}
    bad = [k for k, v in fields.items() if not isinstance(v, str)]
    if bad or not fields["instruction"].strip():
        raise UsageError(
            f"{where}: Alpaca records need a non-empty string 'instruction' and string "
            f"'input'/'output' fields (bad: {', '.join(bad) or 'instruction'})"
        )
    user = fields["instruction"] + ("\n\n" + fields["input"] if fields["input"].strip() else "")
    messages = [{"role": "system", "content": fields["system"]}] if fields["system"].strip() else []
    return [*messages, {"role": "user", "content": user}, assistant_message(fields["output"])]


def _evalset_case(rec: dict[str, Any], where: str, prompt: Prompt | None, source: str) -> Example:
    from pydantic import ValidationError

    from benchsel.evalset import Case

    if prompt is None:
        raise UsageError(
            f"{where}: eval-set cases need an eval set's prompt to become conversations - "
            "pass prompt=load_evalset(NAME).prompt (--evalset NAME)"
        )
    data = {"difficulty": "medium", **rec}
    data.pop("source", None)
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{where}: {loc}: {err['msg']} - eval-set cases are {{id, text, gold}}") from None
    return case_example(case, prompt, source)
