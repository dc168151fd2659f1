"""Builders several test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from benchsel.evalset import EvalSet
from benchsel.store import RunRecord


def run_record(
    models: tuple[str, ...],
    evalset: EvalSet | None = None,
    *,
    run_id: str = "r1",
    **fields: Any,
) -> RunRecord:
    """A stored run's record of ``models`` on ``evalset`` (an unnamed placeholder when None); any other
    RunRecord field by keyword."""
    values: dict[str, Any] = {
        "id": run_id,
        "run_key": "k",
        "created_at": "2026-01-01T00:00:00+00:00",
        "evalset_name": evalset.name if evalset else "extraction-v1",
        "evalset_hash": evalset.content_hash if evalset else "h",
        "evalset_path": str(evalset.path) if evalset else "/x",
        "backend": "ollama",
        "host": "",
        "models": models,
        "repeats": 1,
        "options": {},
        "benchsel_version": "0.1.0",
    }
    return RunRecord(**{**values, **fields})
