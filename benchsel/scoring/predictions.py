"""Predictions made elsewhere: one ``{"id": ..., "output": ...}`` per line, output raw text or an object.

The file is read line by line (never whole), each line at most :data:`MAX_LINE_BYTES`, so an endless
or enormous input is an error or a stream, not a memory blow-up. A case id may appear once; a file that
holds several answers per case says so with ``"repeat": 0, 1, ...`` on each line. A UTF-8 byte-order
mark at the start of the file is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchsel import jsonio
from benchsel.errors import UsageError
from benchsel.scoring.parse import loads_strict
from benchsel.scoring.scorecard import ReplyInput

MAX_LINE_BYTES = 32 * 1024 * 1024
"""The longest line read (32 MiB): far beyond any model's reply, short of exhausting memory."""
SHAPE = '{"id": ..., "output": ...} (optionally "repeat": N)'


def iter_predictions(path: str | Path, known_ids: set[str] | None = None) -> Iterator[ReplyInput]:
    """Yield each prediction as it is read; raise UsageError naming ``file:line`` on the first bad
    line (an unknown id, a duplicate id without ``repeat``, a line too long, not JSON)."""
    seen: dict[tuple[str, int], int] = {}
    lines = jsonio.file_lines(
        path,
        missing="give the JSONL file of predictions",
        max_line_bytes=MAX_LINE_BYTES,
        line_is=f"one prediction, {SHAPE}",
    )
    for lineno, line in lines:
        where = f"{path}:{lineno}"
        reply = _reply(line, where, known_ids)
        key = (reply.case_id, reply.repeat)
        if key in seen:
            what = f"id '{reply.case_id}'" + (f" with repeat {reply.repeat}" if reply.repeat else "")
            raise UsageError(
                f"{where}: {what} appears again (first on line {seen[key]}) - remove the duplicate, or mark "
                'each answer to the same case with "repeat": 0, 1, ...'
            )
        seen[key] = lineno
        yield reply
    if not seen:
        raise UsageError(f"{path}: holds no predictions")


def _reply(line: str, where: str, known_ids: set[str] | None) -> ReplyInput:
    record = loads_strict(line)
    if record is None:
        hint = " (NaN and Infinity are not JSON)" if _lenient_ok(line) else ""
        raise UsageError(f"{where}: not a JSON object{hint} - each line must be {SHAPE}")
    if not isinstance(record, dict) or "id" not in record or "output" not in record:
        raise UsageError(f"{where}: each line must be {SHAPE}")
    case_id = str(record["id"])
    if known_ids is not None and case_id not in known_ids:
        raise UsageError(f"{where}: id '{case_id}' is not a case of the eval set")
    repeat = record.get("repeat", 0)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
        raise UsageError(f'{where}: "repeat" must be a whole number from 0 (got {repeat!r})')
    output: Any = record["output"]
    if output is not None and not isinstance(output, str | dict):
        output = json.dumps(output)
    return ReplyInput(case_id, output, repeat=repeat)


def _lenient_ok(line: str) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def load_predictions(path: str | Path, known_ids: set[str] | None = None) -> list[ReplyInput]:
    """All predictions of a file as a list (see :func:`iter_predictions` to stream them)."""
    return list(iter_predictions(path, known_ids))
