"""benchsel: pick the right small local LLM to fine-tune for structured extraction."""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it; imported on first use so `import benchsel` stays light.
_LAZY = {
    "run": "benchsel.api",
    "load_run": "benchsel.api",
    "load_evalset": "benchsel.evalset",
    "EvalSet": "benchsel.evalset",
    "Case": "benchsel.evalset",
    "score": "benchsel.scoring",
    "score_predictions": "benchsel.scoring",
    "ModelScore": "benchsel.scoring",
    "RunSummary": "benchsel.summary",
    "ModelSummary": "benchsel.summary",
    "select": "benchsel.selection",
    "Constraints": "benchsel.selection",
    "Weights": "benchsel.selection",
    "Selection": "benchsel.selection",
    "write_report": "benchsel.report",
    "compare_runs": "benchsel.report",
    "Store": "benchsel.store",
    "BenchselError": "benchsel.errors",
    "UsageError": "benchsel.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'benchsel' has no attribute {name!r}")
    return getattr(import_module(module), name)
