"""Predictions made elsewhere: one ``{"id": ..., "output": ...}`` per line, output raw text or an object."""

from __future__ import annotations

import json
from pathlib import Path

from benchsel.errors import UsageError
from benchsel.scoring.scorecard import ReplyInput


def load_predictions(path: str | Path, known_ids: set[str] | None = None) -> list[ReplyInput]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file - give the JSONL file of predictions") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from None
    text = raw.decode("utf-8", errors="replace")
    replies: list[ReplyInput] = []
    repeats: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            raise UsageError(
                f'{where}: not a JSON object - each line must be {{"id": ..., "output": ...}}'
            ) from None
        if not isinstance(record, dict) or "id" not in record or "output" not in record:
            raise UsageError(f'{where}: each line must be {{"id": ..., "output": ...}}')
        case_id = str(record["id"])
        if known_ids is not None and case_id not in known_ids:
            raise UsageError(f"{where}: id '{case_id}' is not a case of the eval set")
        output = record["output"]
        if output is not None and not isinstance(output, str | dict):
            output = json.dumps(output)
        repeat = repeats.get(case_id, 0)
        repeats[case_id] = repeat + 1
        replies.append(ReplyInput(case_id, output, repeat=repeat))
    if not replies:
        raise UsageError(f"{path}: holds no predictions")
    return replies
