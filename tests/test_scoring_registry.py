"""The metric registry: every metric reads from a real scored run, counts per case over repeats, and an
unknown name says which ones exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchsel.errors import UsageError
from benchsel.report.demo import DEMO_PROFILES, write_demo_evalset, write_demo_run
from benchsel.scoring.match import Counts
from benchsel.scoring.metrics import f1
from benchsel.scoring.registry import METRICS, Metric, get_metric, register
from benchsel.store import Store
from benchsel.summary import ModelSummary, summarize_run


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelSummary:
    root: Path = tmp_path_factory.mktemp("registry")
    evalset = write_demo_evalset(root / "evalset", 12, seed=3)
    with Store(root / "runs.sqlite") as store:
        write_demo_run(store, evalset, DEMO_PROFILES[1:2], run_id="r", seed=1, repeats=2)
        return summarize_run(store, "r").models[0]


def test_each_metric_reads_what_the_scorecard_says(model: ModelSummary) -> None:
    s = model.score
    expected = {
        "valid_json": s.valid_json.value,
        "schema_valid": s.schema_valid.value,
        "as_is_entity_f1": s.as_is.entities.f1.value,
        "as_is_entity_recall": s.as_is.entities.recall.value,
        "content_entity_f1": s.content.entities.f1.value,
        "content_entity_recall": s.content.entities.recall.value,
        "as_is_relationship_f1": s.as_is.relationships.f1.value,
        "content_relationship_f1": s.content.relationships.f1.value,
        "decode_tokens_per_s": model.speed.decode_tokens_per_s,
        "no_thinking_leak": 1.0 - model.speed.thinking_share,
    }
    assert {name: metric.read(model) for name, metric in METRICS.items()} == expected


def test_per_case_counts_sum_the_repeats(model: ModelSummary) -> None:
    metric = get_metric("content_entity_f1")
    per_case = metric.per_case(model.score.per_reply)
    assert len(per_case) == model.score.cases
    assert sum(per_case.values(), Counts()) == model.score.content.entities.counts
    assert f1(sum(per_case.values(), Counts())) == pytest.approx(metric.read(model))
    valid = get_metric("valid_json").per_case(model.score.per_reply)
    assert {c.tp + c.fn for c in valid.values()} == {2}


def test_formats_by_kind() -> None:
    assert get_metric("valid_json").format(0.755) == "75.5%"
    assert get_metric("content_entity_f1").format(0.5) == "0.500"
    assert get_metric("decode_tokens_per_s").format(42.04) == "42.0"
    assert get_metric("decode_tokens_per_s").format(None, na="-") == "-"


def test_unknown_and_duplicate_names() -> None:
    with pytest.raises(UsageError, match="unknown metric 'f1' - use one of valid_json, schema_valid"):
        get_metric("f1")
    with pytest.raises(ValueError, match="already registered"):
        register(Metric("valid_json", "Valid JSON", "rate", lambda m: 0.0))
