"""Reading JSON and JSONL files the one way every reader of benchsel uses: UTF-8 (a leading byte-order
mark dropped, anything else not UTF-8 an error naming file:line), blank lines skipped, each problem one
line naming ``file:line`` and raised as the caller's error type."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from benchsel.errors import BenchselError, UsageError

BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte-order mark (Windows editors write one): ignored at the start of a file."""

ErrorType = type[BenchselError]


def decode(raw: bytes, where: str, error: ErrorType = UsageError) -> str:
    """One line (or a whole file) as text; invalid UTF-8 is an error saying which byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 (byte {exc.start}) - save it as UTF-8") from None


def loads(
    text: str, where: str, error: ErrorType = UsageError, *, whole_file: bool = False, hint: str = ""
) -> Any:
    """``json.loads`` with its failures (bad syntax, nesting too deep) as one line naming ``where``; for a
    whole file the line and column are added, ``hint`` says what the file should hold."""
    try:
        return json.loads(text)
    except RecursionError:
        reason = ": nested too deeply"
    except json.JSONDecodeError as exc:
        reason = f": {exc.msg}" + (f" at line {exc.lineno}, column {exc.colno}" if whole_file else "")
    raise error(f"{where}: not valid JSON{reason}" + (f" - {hint}" if hint else ""))


def text_lines(
    raw_lines: Iterable[bytes], path: Path | str, error: ErrorType = UsageError
) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line; the byte-order mark dropped from the first line."""
    for lineno, raw in enumerate(raw_lines, start=1):
        text = decode(raw.removeprefix(BOM) if lineno == 1 else raw, f"{path}:{lineno}", error)
        if text.strip():
            yield lineno, text


def open_binary(path: Path, missing: str, error: ErrorType = UsageError) -> Any:
    """The file opened for reading bytes; a missing or unreadable file is one line (``missing`` says
    what to give instead)."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise error(f"{path}: no such file" + (f" - {missing}" if missing else "")) from None
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror}") from None


def file_lines(
    path: str | Path,
    *,
    missing: str,
    max_line_bytes: int,
    line_is: str = "one JSON record",
    error: ErrorType = UsageError,
) -> Iterator[tuple[int, str]]:
    """Stream a JSONL file's non-blank lines as (line number, text), never more than
    ``max_line_bytes`` of one line in memory (``line_is`` says what a line holds, for that error)."""
    path = Path(path)
    with open_binary(path, missing, error) as handle:
        yield from text_lines(_capped(handle, path, max_line_bytes, line_is, error), path, error)


def _capped(handle: Any, path: Path, max_line_bytes: int, line_is: str, error: ErrorType) -> Iterator[bytes]:
    lineno = 0
    while True:
        try:
            raw = handle.readline(max_line_bytes + 1)
        except OSError as exc:
            raise error(f"{path}: cannot be read: {exc.strerror}") from None
        if not raw:
            return
        lineno += 1
        if len(raw) > max_line_bytes:
            raise error(
                f"{path}:{lineno}: line longer than {max_line_bytes // (1024 * 1024)} MiB - "
                f"each line must be {line_is}; is this a JSONL file?"
            )
        yield raw


RECORDS = "the file is not JSON or JSONL: give one JSON object per line, or a JSON array of objects"


def read_records(
    path: str | Path, *, missing: str, error: ErrorType = UsageError
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object of a JSON array file or a JSONL file, with where it stands (``file:line`` for JSONL,
    ``file[index]`` for an array); anything but an object is an error."""
    path = Path(path)
    with open_binary(path, missing, error) as handle:
        try:
            raw = handle.read().removeprefix(BOM)
        except OSError as exc:
            raise error(f"{path}: cannot be read: {exc.strerror}") from None
    if raw.lstrip().startswith(b"["):
        items = loads(decode(raw, str(path), error), str(path), error, whole_file=True, hint=RECORDS)
        if not isinstance(items, list):
            raise error(f"{path}: {RECORDS}")
        records: Iterable[tuple[str, Any]] = ((f"{path}[{i}]", item) for i, item in enumerate(items))
    else:
        records = (
            (f"{path}:{n}", loads(text, f"{path}:{n}", error, hint=RECORDS))
            for n, text in text_lines(raw.split(b"\n"), path, error)
        )
    for where, record in records:
        if not isinstance(record, dict):
            raise error(
                f"{where}: expected a list of objects (a JSON array) or one object per line (JSONL), "
                f"got {type(record).__name__}"
            )
        yield where, record
