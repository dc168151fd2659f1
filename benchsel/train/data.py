"""Training data: one example form, importers for common formats, checks before training, rendering.

Importers read chat-messages JSONL, ShareGPT, Alpaca and eval-set cases; :func:`prepare` drops
schema-invalid targets, duplicates and near duplicates, refuses (or drops) examples that leak into an
eval set, and splits the rest; :func:`render_for_training` tokenizes with the base model's chat template.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from benchsel import jsonio
from benchsel.errors import UsageError
from benchsel.normalize import normalize_text

if TYPE_CHECKING:
    from benchsel.evalset import Case, EvalSet, Prompt

Format = Literal["auto", "chat", "sharegpt", "alpaca", "evalset"]
FORMATS: tuple[str, ...] = ("chat", "sharegpt", "alpaca", "evalset")
IGNORE_INDEX = -100
SHINGLE_WORDS = 5
NEAR_DUPLICATE_JACCARD = 0.8
LEAK_CONTAINMENT = 0.5


class LeakageError(UsageError):
    """Training examples repeat eval-set texts; ``ids`` lists the offending training ids."""

    def __init__(self, message: str, ids: Sequence[str]) -> None:
        super().__init__(message)
        self.ids = tuple(ids)


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
    return _from_dicts(case.id, source, [*prompt.messages(case.text), _assistant(answer)], case.text)


# ---- importers ---------------------------------------------------------------------------------


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
        return _from_dicts(ident, source, _messages(rec, "messages", "role", "content", where), text, where)
    if fmt == "sharegpt":
        return _from_dicts(ident, source, _sharegpt(rec, where), text, where)
    if fmt == "alpaca":
        return _from_dicts(ident, source, _alpaca(rec, where), text, where)
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
    return [*messages, {"role": "user", "content": user}, _assistant(fields["output"])]


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


def _assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def _from_dicts(
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


# ---- checks before training --------------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    id: str
    reason: Literal["invalid", "exact_duplicate", "near_duplicate", "leaked"]
    detail: str = ""


@dataclass(frozen=True)
class DataReport:
    total: int
    train: int
    validation: int
    dropped: tuple[Dropped, ...] = ()
    evalset: str | None = None
    seed: int = 0

    @property
    def kept(self) -> int:
        return self.train + self.validation

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(d.reason for d in self.dropped))

    def lines(self) -> list[str]:
        counts = self.counts
        parts = [
            f"{counts[reason]} {label}"
            for reason, label in (
                ("invalid", "schema-invalid targets"),
                ("exact_duplicate", "exact duplicates"),
                ("near_duplicate", "near duplicates"),
            )
            if counts.get(reason)
        ]
        if counts.get("leaked"):
            parts.append(f"{counts['leaked']} leaked into {self.evalset} (dropped)")
        head = f"kept {self.kept} of {self.total}" + (": " + ", ".join(parts) if parts else "")
        lines = [head, f"split: {self.train} train, {self.validation} validation (seed {self.seed})"]
        lines += [f"  invalid {d.id}: {d.detail}" for d in self.dropped if d.reason == "invalid"][:5]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class PreparedData:
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    report: DataReport


def prepare(
    examples: Sequence[Example],
    *,
    schema: Mapping[str, Any] | None,
    evalset: EvalSet | None = None,
    drop_leaks: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> PreparedData:
    """Check, deduplicate, leak-check and split training examples (in that order)."""
    if not 0 <= val_fraction < 1:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    dropped: list[Dropped] = []
    kept = _drop_invalid(list(examples), schema, dropped)
    kept = _drop_exact_duplicates(kept, dropped)
    kept = _drop_near_duplicates(kept, dropped)
    if evalset is not None:
        kept = _check_leaks(kept, evalset, drop_leaks, dropped)
    train, validation = split(kept, val_fraction, seed)
    name = evalset.name if evalset is not None else None
    report = DataReport(len(examples), len(train), len(validation), tuple(dropped), name, seed)
    return PreparedData(tuple(train), tuple(validation), report)


def split(examples: Sequence[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded split; at least one validation example when there are two or more and val_fraction > 0."""
    n = len(examples)
    n_val = min(n - 1, max(1, round(n * val_fraction))) if n >= 2 and val_fraction > 0 else 0
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in val_idx]
    return train, [e for i, e in enumerate(examples) if i in val_idx]


def _drop_invalid(
    examples: list[Example], schema: Mapping[str, Any] | None, dropped: list[Dropped]
) -> list[Example]:
    if schema is None:
        return examples
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    kept = []
    for example in examples:
        try:
            target = json.loads(example.answer)
        except json.JSONDecodeError as exc:
            dropped.append(Dropped(example.id, "invalid", f"answer is not JSON ({exc.msg})"))
            continue
        error = next(iter(validator.iter_errors(target)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "top level"
            dropped.append(Dropped(example.id, "invalid", f"{where}: {error.message}"))
            continue
        kept.append(example)
    return kept


def shingles(text: str, k: int = SHINGLE_WORDS) -> frozenset[int]:
    """Hashes of word k-grams of the normalised text (the whole text when it is shorter than k words)."""
    words = normalize_text(text).split()
    grams = [" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))]
    return frozenset(zlib.crc32(g.encode()) for g in grams)


def _drop_exact_duplicates(examples: list[Example], dropped: list[Dropped]) -> list[Example]:
    first: dict[str, str] = {}
    kept = []
    for example in examples:
        key = normalize_text(example.input_text)
        if key in first:
            dropped.append(Dropped(example.id, "exact_duplicate", f"same text as {first[key]}"))
            continue
        first[key] = example.id
        kept.append(example)
    return kept


def _drop_near_duplicates(examples: list[Example], dropped: list[Dropped]) -> list[Example]:
    sets = [shingles(e.input_text) for e in examples]
    duplicate_of = near_duplicates(sets, NEAR_DUPLICATE_JACCARD)
    kept = []
    for i, example in enumerate(examples):
        if i in duplicate_of:
            other = examples[duplicate_of[i]].id
            dropped.append(Dropped(example.id, "near_duplicate", f"near duplicate of {other}"))
        else:
            kept.append(example)
    return kept


_MINHASH_BANDS = 20
_MINHASH_ROWS = 5


def near_duplicates(sets: Sequence[frozenset[int]], threshold: float) -> dict[int, int]:
    """Map each set's index to an earlier kept set it is a near duplicate of (Jaccard >= threshold).

    MinHash signatures banded into an LSH index give the candidates; exact Jaccard confirms them, so
    the result holds no false positives and rarely misses a pair above the threshold.
    """
    if not sets:
        return {}
    signatures = _minhash([sorted(s) for s in sets])
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(_MINHASH_BANDS)]
    found: dict[int, int] = {}
    for i, sig in enumerate(signatures):
        keys = [sig[b * _MINHASH_ROWS : (b + 1) * _MINHASH_ROWS].tobytes() for b in range(_MINHASH_BANDS)]
        candidates = sorted({j for band, key in zip(buckets, keys, strict=True) for j in band.get(key, ())})
        match = next((j for j in candidates if _jaccard(sets[i], sets[j]) >= threshold), None)
        if match is not None:
            found[i] = match
            continue
        for band, key in zip(buckets, keys, strict=True):
            band.setdefault(key, []).append(i)
    return found


def _minhash(hashes: list[list[int]]) -> Any:
    import numpy as np

    lengths = np.array([len(h) for h in hashes])
    flat = np.fromiter((x for h in hashes for x in h), dtype=np.uint64, count=int(lengths.sum()))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    perms = _MINHASH_BANDS * _MINHASH_ROWS
    salts = np.random.default_rng(20240611).integers(0, 1 << 63, size=perms, dtype=np.uint64)
    out = np.empty((len(hashes), perms), dtype=np.uint64)
    for k in range(perms):
        out[:, k] = np.minimum.reduceat(_mix64(flat ^ salts[k]), starts)
    return out


def _mix64(x: Any) -> Any:
    """splitmix64's finaliser: a bijective 64-bit mix, so each salt gives an independent permutation."""
    import numpy as np

    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _jaccard(left: frozenset[int], right: frozenset[int]) -> float:
    return len(left & right) / len(left | right) if left or right else 1.0


def find_leaks(examples: Sequence[Example], evalset: EvalSet) -> dict[str, str]:
    """Training ids whose text contains at least half of an eval case's shingles -> that case's id."""
    index: dict[int, list[int]] = {}
    case_sizes = []
    for c, case in enumerate(evalset.cases):
        grams = shingles(case.text)
        case_sizes.append(len(grams))
        for g in grams:
            index.setdefault(g, []).append(c)
    leaks: dict[str, str] = {}
    for example in examples:
        hits = Counter(c for g in shingles(example.input_text) for c in index.get(g, ()))
        leaked = [c for c, n in hits.items() if n / case_sizes[c] >= LEAK_CONTAINMENT]
        if leaked:
            leaks[example.id] = evalset.cases[min(leaked)].id
    return leaks


def _check_leaks(
    examples: list[Example], evalset: EvalSet, drop_leaks: bool, dropped: list[Dropped]
) -> list[Example]:
    leaks = find_leaks(examples, evalset)
    if leaks and not drop_leaks:
        shown = ", ".join(f"{i} (eval case {c})" for i, c in list(leaks.items())[:5])
        more = f" and {len(leaks) - 5} more" if len(leaks) > 5 else ""
        raise LeakageError(
            f"{len(leaks)} training examples repeat texts of eval set '{evalset.name}': {shown}{more} - "
            "training on them would inflate the after-training scores; remove them, or --drop-leaks "
            "drops them",
            list(leaks),
        )
    dropped.extend(Dropped(i, "leaked", f"repeats eval case {c}") for i, c in leaks.items())
    return [e for e in examples if e.id not in leaks]


# ---- rendering with the base model's chat template --------------------------------------------


def render_for_training(
    example: Example, tokenizer: Any, *, fallback_template: str | None = None
) -> dict[str, list[int]]:
    """Token ids of the whole conversation, with labels -100 on the prompt so the loss is on the answer.

    The prompt is the conversation up to the answer with the generation prompt added. When the
    template renders history differently once the answer follows (so the prompt is not a prefix of
    the whole), the whole is built as prompt + the answer with the template's closing markers.
    """
    template = None if getattr(tokenizer, "chat_template", None) else fallback_template
    if template is None and not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
        raise UsageError(
            f"{name} has no chat template (a base model?) - use an instruct model's tokenizer or pass "
            "fallback_template= (chat_templates.GEMMA_TURN_TEMPLATE gives Gemma's turn format)"
        )
    messages = [m.as_dict() for m in example.messages]
    prompt_text = _chat_text(tokenizer, messages[:-1], template, add_generation_prompt=True)
    full_text = _chat_text(tokenizer, messages, template, add_generation_prompt=False)
    prompt_ids = _encode(tokenizer, prompt_text)
    full_ids = _encode(tokenizer, full_text)
    if not (full_text.startswith(prompt_text) and full_ids[: len(prompt_ids)] == prompt_ids):
        full_ids = prompt_ids + _encode(tokenizer, _answer_with_closing(full_text, example.answer))
    labels = [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    return {"input_ids": full_ids, "labels": labels, "attention_mask": [1] * len(full_ids)}


def _chat_text(tokenizer: Any, messages: list[dict[str, str]], template: str | None, **kwargs: Any) -> str:
    text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)
    if not isinstance(text, str):
        raise UsageError("the tokenizer's chat template did not render to text - check the template")
    return text


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _answer_with_closing(full_text: str, answer: str) -> str:
    at = full_text.rfind(answer.strip())
    return answer.strip() + full_text[at + len(answer.strip()) :] if at >= 0 else answer
