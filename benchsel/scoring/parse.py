"""Reading a model's reply: strict JSON, and what can be recovered from a messy one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

Recovery = Literal["strict", "object", "think", "fence", "embedded", "repaired", "truncated", "none"]

_THINK_TAG = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"^\s*<(think|thinking|reasoning)>", re.IGNORECASE)
_FENCE_HEAD = re.compile(r"```[ \t]*(?:json|JSON|javascript)?[ \t]*\n?")
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_MAX_CANDIDATES = 64
_MAX_REPAIR_CHARS = 200_000
# Recovery parses the text several times; past this size (far beyond any num_predict) only the
# strict parse is tried, so a runaway reply costs one parse, not many.
_MAX_RECOVER_CHARS = 1_000_000


@dataclass(frozen=True)
class ParsedReply:
    """``strict`` is the object when the whole trimmed reply is one; ``recovered`` is the best object
    that could be read out of it (equal to ``strict`` when that exists)."""

    strict: dict[str, Any] | None
    recovered: dict[str, Any] | None
    recovery: Recovery

    @property
    def strict_ok(self) -> bool:
        return self.strict is not None


_DECODER = json.JSONDecoder()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    """Python's lenient reading: NaN and Infinity pass (recovery may use it, the strict view may not)."""
    try:
        return _DECODER.decode(text)  # what json.loads does, without its per-call argument checks
    except (ValueError, RecursionError):
        return None


# made once: ``json.loads`` with a keyword argument builds a new decoder on every call
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads_strict(text: str) -> Any:
    """JSON as RFC 8259 defines it: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (JSON.parse,
    Go and serde reject them), so a reply holding them is not valid JSON. None when it does not parse."""
    try:
        return _STRICT_DECODER.decode(text)
    except (ValueError, RecursionError):
        return None


def clean_text(raw: str | bytes) -> str:
    """Decode bytes leniently and replace lone surrogates so every later step sees valid text."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    if raw.isascii():
        return raw
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return raw.encode("utf-8", errors="replace").decode("utf-8")
    return raw


def parse_reply(raw: str | bytes | dict[str, Any] | None) -> ParsedReply:
    """Strict parse first; then strip thinking, code fences and prose, repair trailing commas and
    truncation. Never raises."""
    if isinstance(raw, dict):
        return ParsedReply(raw, raw, "object")
    if raw is None:
        return ParsedReply(None, None, "none")
    text = clean_text(raw).strip()
    # One lenient parse serves both the strict view and recovery (which starts by parsing the same
    # text): the two readings differ only on NaN/Infinity, so the strict one is redone only when the
    # text holds one of those words.
    lenient = _loads(text)
    value = loads_strict(text) if lenient is not None and _may_hold_constant(text) else lenient
    if isinstance(value, dict):
        return ParsedReply(value, value, "strict")
    if len(text) > _MAX_RECOVER_CHARS:
        return ParsedReply(None, None, "none")
    recovered, how = _recover(text, lenient)
    return ParsedReply(None, recovered, how)


def _may_hold_constant(text: str) -> bool:
    return "NaN" in text or "Infinity" in text


def recover(text: str) -> tuple[dict[str, Any] | None, Recovery]:
    return _recover(text, _loads(text))


def _recover(text: str, parsed: Any) -> tuple[dict[str, Any] | None, Recovery]:
    """``parsed`` is ``_loads(text)``, passed in when the caller already has it."""
    body, how = text, "embedded"
    without_think = strip_thinking(body)
    if without_think != body:
        body, how = without_think.strip(), "think"
    elif _THINK_OPEN.match(body):
        return None, "none"  # reasoning that never closed: the answer was never reached
    value = parsed if body is text else _loads(body)
    if isinstance(value, dict):
        return value, how  # type: ignore[return-value]
    if value is not None:
        return _inside_json(value)
    for block in _fenced_blocks(body):
        found, _ = _first_object(block)
        if found is not None:
            return found, "fence"
    first = _object_at(body, body.find("{"))
    if first is not None:
        return first, how  # type: ignore[return-value]
    repaired = _repair_truncated(body)
    if repaired is not None:
        return repaired, "truncated"
    found, commas_removed = _first_object(body)
    if found is not None:
        return found, "repaired" if commas_removed else how  # type: ignore[return-value]
    return None, "none"


def _fenced_blocks(text: str) -> list[str]:
    """The insides of ```-fenced blocks (a last one may be unclosed), language tag dropped."""
    blocks: list[str] = []
    pos = 0
    while (opening := text.find("```", pos)) != -1:
        head = _FENCE_HEAD.match(text, opening)
        start = head.end() if head else opening + 3
        closing = text.find("```", start)
        if closing == -1:
            blocks.append(text[start:])
            break
        blocks.append(text[start:closing])
        pos = closing + 3
    return blocks


def strip_thinking(text: str) -> str:
    """Remove every closed ``<think>...</think>`` block (also ``thinking``, ``reasoning``). Linear:
    an opening tag that never closes ends the search instead of being retried at every later tag."""
    parts: list[str] = []
    pos = 0
    while (opening := _THINK_TAG.search(text, pos)) is not None:
        closing = re.compile(f"</{opening.group(1)}>", re.IGNORECASE).search(text, opening.end())
        if closing is None:
            break
        parts.append(text[pos : opening.start()])
        pos = closing.end()
    return "".join(parts) + text[pos:] if parts else text


def _inside_json(value: Any) -> tuple[dict[str, Any] | None, Recovery]:
    """A reply that is valid JSON but not an object: the answer double-encoded as a string, or wrapped
    in a one-element list, is recovered; anything else holds no answer."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0], "embedded"
    inner = _loads(value.strip()) if isinstance(value, str) else None
    if isinstance(inner, dict):
        return inner, "embedded"
    return None, "none"


def _first_object(text: str) -> tuple[dict[str, Any] | None, bool]:
    """The first complete JSON object embedded in text, and whether trailing commas were removed
    first (before the scan: else an object with one fails and an object nested in it is taken)."""
    if _TRAILING_COMMA.search(text):
        return _scan_objects(_TRAILING_COMMA.sub(r"\1", text)), True
    return _scan_objects(text), False


def _object_at(text: str, start: int) -> dict[str, Any] | None:
    """The object that starts at ``start`` when it is complete (the common prose-wrapped reply)."""
    if start == -1:
        return None
    try:
        value, _end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _scan_objects(text: str) -> dict[str, Any] | None:
    decoder = _DECODER
    start = text.find("{")
    for _ in range(_MAX_CANDIDATES):
        if start == -1:
            break
        try:
            value, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


# A complete string, an unterminated one (runs to the end), or one structural character.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[{}\[\],]', re.DOTALL)


def _scan(text: str) -> tuple[list[str], int, bool]:
    """The brackets open at the last complete item, the index after that item, and whether the
    outermost object closed. Strings are skipped whole by the regex, so this is fast on long text."""
    stack: list[str] = []
    safe_stack: list[str] = []
    last_safe = 0
    for token in _TOKEN.finditer(text):
        ch = token.group()
        if ch[0] == '"':
            continue
        if ch == "{" or ch == "[":
            stack.append("}" if ch == "{" else "]")
        elif ch == ",":
            last_safe, safe_stack = token.start(), stack.copy()
        else:
            if not stack:
                return stack, last_safe, True
            stack.pop()
            last_safe, safe_stack = token.end(), stack.copy()
            if not stack:
                return stack, last_safe, True
    return safe_stack, last_safe, False


def _repair_truncated(text: str) -> dict[str, Any] | None:
    """Close what a reply cut off at the token limit left open: drop the unfinished last item, then
    close the arrays and objects still open."""
    start = text.find("{")
    if start == -1 or len(text) - start > _MAX_REPAIR_CHARS:
        return None
    still_open, last_safe, closed = _scan(text[start:])
    if closed or not still_open or last_safe == 0:
        return None
    # removing commas leaves the brackets as they were, so what was open at last_safe still is
    prefix = _TRAILING_COMMA.sub(r"\1", text[start : start + last_safe].rstrip().rstrip(","))
    value = _loads(prefix + "".join(reversed(still_open)))
    return value if isinstance(value, dict) else None
