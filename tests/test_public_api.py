"""The names ``benchsel`` exports: pinned, each resolving lazily (importing benchsel stays cheap)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import benchsel

EXPORTS = [
    "BenchselError",
    "Case",
    "Constraints",
    "EvalSet",
    "ModelScore",
    "ModelSummary",
    "RunSummary",
    "Selection",
    "Store",
    "UsageError",
    "Weights",
    "__version__",
    "compare_runs",
    "load_evalset",
    "load_run",
    "run",
    "score",
    "score_predictions",
    "select",
    "write_report",
]


def test_all_is_pinned() -> None:
    assert sorted(benchsel.__all__) == EXPORTS


@pytest.mark.parametrize("name", EXPORTS)
def test_each_name_resolves(name: str) -> None:
    value = getattr(benchsel, name)
    assert value is not None
    if name != "__version__":
        assert value.__name__ == name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        benchsel.nope  # noqa: B018


def test_star_import_and_laziness() -> None:
    code = (
        "import sys, benchsel\n"
        "heavy = [m for m in ('benchsel.scoring', 'benchsel.evalset', 'benchsel.api', 'benchsel.report')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from benchsel import *\n"
        "print(load_evalset.__module__, score.__module__)\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert done.stdout.split() == ["benchsel.evalset", "benchsel.scoring.scorecard"]


def test_exports_work_together(tmp_path: Path) -> None:
    import json

    evalset = benchsel.load_evalset("extraction-v1")
    assert isinstance(evalset, benchsel.EvalSet)
    assert isinstance(evalset.cases[0], benchsel.Case)
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": evalset.cases[0].id, "output": "{}"}))
    result = benchsel.score_predictions(evalset, predictions)
    assert isinstance(result, benchsel.ModelScore)
    assert issubclass(benchsel.UsageError, benchsel.BenchselError)
