"""benchsel.cli.render: the terminal results table at 80 and 100 columns, failed models, short names."""

from __future__ import annotations

import io
import json

import pytest
from helpers import run_record
from rich.console import Console

from benchsel.cli import render
from benchsel.evalset import EvalSet, load_evalset
from benchsel.records import Reply
from benchsel.store import StoredResult
from benchsel.summary import ModelSummary, RunSummary, summarize_model

LONG_NAME = "qwen2.5-coder:1.5b-instruct-q8_0"
GGUF = "/models/downloads/SmolLM2-135M-Instruct-Q8_0.gguf"


@pytest.fixture(scope="module")
def v1() -> EvalSet:
    return load_evalset("extraction-v1")


def answered(evalset: EvalSet, name: str, n: int = 6) -> ModelSummary:
    results = [
        StoredResult(
            "r1",
            name,
            case.id,
            0,
            "",
            Reply(
                content=json.dumps(case.gold.model_dump(exclude_none=True)),
                eval_count=20,
                eval_duration_ns=10**9,
            ),
        )
        for case in evalset.cases[:n]
    ]
    return summarize_model(evalset, name, results, backend="llamacpp")


def failed(evalset: EvalSet, name: str) -> ModelSummary:
    results = [
        StoredResult("r1", name, case.id, 0, "", None, "rejected:http_400", "the request exceeds the context")
        for case in evalset.cases[:2]
    ]
    return summarize_model(evalset, name, results, backend="llamacpp")


def rendered(models: list[ModelSummary], width: int) -> str:
    out = io.StringIO()
    console = Console(width=width, file=out, force_terminal=False, color_system=None)
    console.print(render.results_table(models, title="extraction-v1, run r1", width=width))
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 100])
def test_the_table_fits_the_terminal_and_names_every_model_whole(v1: EvalSet, width: int) -> None:
    models = [answered(v1, LONG_NAME), answered(v1, GGUF), failed(v1, "smollm2:135m")]
    text = rendered(models, width)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    for name in (LONG_NAME, "SmolLM2-135M-Instruct-Q8_0", "smollm2:135m"):
        assert any(name in line for line in text.splitlines()), name
    assert GGUF not in text  # a .gguf path is shown by its file stem
    lines = text.splitlines()
    header = [
        line.split("┃") for line in lines[: next(i for i, ln in enumerate(lines) if ln.startswith("┡"))]
    ]
    headers = {
        " ".join(" ".join(parts).split()) for parts in zip(*(h for h in header if len(h) > 1), strict=True)
    }
    for column in ("Valid JSON", "Entity F1", "Rel F1", "Content F1"):  # the core columns stay
        assert column in headers, headers
    assert "Not shown at this width:" in " ".join(text.split())


def test_a_wide_terminal_shows_every_column(v1: EvalSet) -> None:
    text = rendered([answered(v1, LONG_NAME)], 200)
    header = next(line for line in text.splitlines() if "Model" in line)
    for column in ("Valid JSON", "Entity F1", "Rel F1", "Content F1", "tok/s", "Schema", "Params"):
        assert column in header
    assert "Not shown" not in text


def test_a_model_with_no_scored_reply_is_failed_with_its_errors_not_perfect(v1: EvalSet) -> None:
    model = failed(v1, "smollm2:135m")
    assert model.failed and model.score.replies == 0
    assert model.failure == "failed: 2 requests failed (2 rejected:http_400), no scored reply"
    text = rendered([model], 100)
    row = [line for line in text.splitlines() if "smollm2:135m" in line or "failed" in line]
    assert any("failed: 2 rejected:http_400" in line for line in row)
    assert "1.00" not in text  # F1 of nothing is not shown as perfect


def test_notes_name_the_failure_and_the_first_error(v1: EvalSet) -> None:
    models = (answered(v1, "gemma3:270m"), failed(v1, "smollm2:135m"))
    run = run_record(
        tuple(m.name for m in models), v1, created_at="2026-11-30T05:00:00", backend="llamacpp", host="local"
    )
    summary = RunSummary(run, v1, models)
    lines = render.notes(summary)
    assert lines == [
        "smollm2:135m: failed: 2 requests failed (2 rejected:http_400), no scored reply; it has no score "
        "and is left out of the rankings - first error: the request exceeds the context"
    ]
    assert not summary.nothing_scored and summary.failed_models == (models[1],)
    assert RunSummary(summary.run, v1, (models[1],)).nothing_scored
