"""Builders and process probes several test modules (and benchmarks/fault_sweep.py) share; fixtures
live in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path
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


def pid_alive(pid: int) -> bool:
    """``pid`` is a running process (a zombie, which still answers kill(0), is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "\nState:\tZ" not in status.read_text()


def engine_pids(parent: int) -> list[int]:
    """llama-server processes whose parent is ``parent``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if name.startswith("llama-server") and int(rest[1]) == parent:
            pids.append(int(entry.name))
    return pids
