"""Comparing two runs written into a real store: pairing, paired differences, per-case wins and losses,
the regression gate and its exit codes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchsel.cli.main import cli
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet
from benchsel.report import compare_runs, write_comparison
from benchsel.report.compare import METRIC_NAMES, parse_regress
from benchsel.report.demo import DEMO_PROFILES, DemoProfile, write_demo_evalset, write_demo_run
from benchsel.scoring.metrics import paired_ratio_bootstrap
from benchsel.store import Store
from benchsel.summary import RunSummary, summarize_run

BASE = DEMO_PROFILES[1]  # gemma4:e2b: perfect recall, 75% valid JSON
TUNED = replace(BASE, name="gemma4-e2b-kg", valid_json=1.0)


def two_runs(
    tmp_path: Path, a: tuple[DemoProfile, ...], b: tuple[DemoProfile, ...], cases: int = 30
) -> tuple[Path, EvalSet, RunSummary, RunSummary]:
    evalset = write_demo_evalset(tmp_path / "evalset", cases, seed=11)
    db = tmp_path / "runs.sqlite"
    with Store(db) as store:
        write_demo_run(store, evalset, a, run_id="before", seed=1)
        write_demo_run(store, evalset, b, run_id="after", seed=2)
        return db, evalset, summarize_run(store, "before"), summarize_run(store, "after")


def test_one_model_each_pairs_base_with_fine_tuned(tmp_path: Path) -> None:
    _, evalset, before, after = two_runs(tmp_path, (BASE,), (TUNED,))
    comparison = compare_runs(before, after)
    (pair,) = comparison.pairs
    assert (pair.model_a, pair.model_b, pair.cases) == (BASE.name, TUNED.name, len(evalset.cases))
    valid = pair.diff("valid_json")
    assert valid.a == before.models[0].score.valid_json.value
    assert valid.b == after.models[0].score.valid_json.value == 1.0
    assert valid.difference is not None
    assert valid.difference.value == pytest.approx(valid.b - valid.a)
    assert valid.difference.low <= valid.difference.value <= valid.difference.high
    content = pair.diff("content_entity_f1")
    assert content.a == pytest.approx(before.models[0].score.content.entities.f1.value)
    assert content.b == pytest.approx(after.models[0].score.content.entities.f1.value)
    speed = pair.diff("decode_tokens_per_s")
    assert speed.a == before.models[0].speed.decode_tokens_per_s
    assert (
        speed.difference is not None
        and speed.difference.low <= speed.difference.value <= speed.difference.high
    )
    assert pair.wins + pair.losses + pair.ties == pair.cases
    assert comparison.only_a == comparison.only_b == ()


def test_models_pair_by_name_and_the_rest_are_listed(tmp_path: Path) -> None:
    a = DEMO_PROFILES[0], DEMO_PROFILES[1]
    b = DEMO_PROFILES[1], DEMO_PROFILES[7]
    _, _, before, after = two_runs(tmp_path, a, b, cases=8)
    comparison = compare_runs(before, after)
    assert [(p.model_a, p.model_b) for p in comparison.pairs] == [(DEMO_PROFILES[1].name,) * 2]
    assert comparison.only_a == (DEMO_PROFILES[0].name,)
    assert comparison.only_b == (DEMO_PROFILES[7].name,)


def test_no_common_model_is_a_usage_error(tmp_path: Path) -> None:
    _, _, before, after = two_runs(tmp_path, DEMO_PROFILES[:2], DEMO_PROFILES[7:9], cases=4)
    with pytest.raises(UsageError, match="have no model in common"):
        compare_runs(before, after)


def test_different_eval_sets_are_refused(tmp_path: Path) -> None:
    db, _, before, _ = two_runs(tmp_path, (BASE,), (TUNED,), cases=4)
    other = write_demo_evalset(tmp_path / "other", 5, seed=99)
    with Store(db) as store:
        write_demo_run(store, other, (TUNED,), run_id="elsewhere", seed=3)
        elsewhere = summarize_run(store, "elsewhere")
    with pytest.raises(
        UsageError, match="used different eval sets .* only runs on the same eval set compare"
    ):
        compare_runs(before, elsewhere)
    result = CliRunner().invoke(
        cli, ["compare", "before", "elsewhere", "--db", str(db), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "used different eval sets" in result.output


def test_regressions_name_the_metric_and_the_drop(tmp_path: Path) -> None:
    _, _, before, after = two_runs(tmp_path, (BASE,), (TUNED,))
    forward, backward = compare_runs(before, after), compare_runs(after, before)
    assert forward.regressions("valid_json", 0.0) == []
    (line,) = backward.regressions("valid_json", 0.0)
    drop = after.models[0].score.valid_json.value - before.models[0].score.valid_json.value
    assert line.startswith(f"valid_json dropped by {drop:.3f} for {TUNED.name} -> {BASE.name}")
    assert backward.regressions("valid_json", drop + 0.01) == []


def test_paired_ratio_bootstrap_of_identical_runs_is_zero() -> None:
    timings = [(100, 2_000_000_000), (50, 1_000_000_000), (80, 4_000_000_000)]
    paired = paired_ratio_bootstrap(timings, timings, seed=1)
    assert (paired.difference.value, paired.difference.low, paired.difference.high) == (0.0, 0.0, 0.0)
    faster = [(tokens * 2, ns) for tokens, ns in timings]
    doubled = paired_ratio_bootstrap(timings, faster, seed=1)
    assert doubled.difference.value == pytest.approx(230 / 7)  # 460/7 - 230/7 tokens per second
    assert doubled.p_not_better == 0.0


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [("content_entity_f1:0.02", ("content_entity_f1", 0.02)), ("valid_json", ("valid_json", 0.0))],
)
def test_parse_regress(spec: str, parsed: tuple[str, float]) -> None:
    assert parse_regress(spec) == parsed


def test_parse_regress_refuses_unknown_metric_and_bad_tolerance() -> None:
    with pytest.raises(UsageError, match="unknown metric 'f1' - valid metrics: valid_json, schema_valid"):
        parse_regress("f1:0.1")
    with pytest.raises(UsageError, match="cannot read the tolerance"):
        parse_regress("valid_json:lots")


def test_write_comparison_markdown_and_html(tmp_path: Path) -> None:
    _, _, before, after = two_runs(tmp_path, (BASE,), (TUNED,), cases=10)
    md, html = write_comparison(compare_runs(before, after), tmp_path / "out", "md,html")
    assert md == tmp_path / "out" / "compare-before-after" / "compare.md"
    text = md.read_text(encoding="utf-8")
    assert f"## {BASE.name} -> {TUNED.name}" in text
    assert "| Valid JSON |" in text and "Difference (B - A) [95% CI]" in text
    page = html.read_text(encoding="utf-8")
    assert "default-src 'none'" in page and "<script" not in page
    assert "Valid JSON" in page


def test_cli_compare_passes_and_fails_the_regression_gate(tmp_path: Path) -> None:
    db, _, before, after = two_runs(tmp_path, (BASE,), (TUNED,), cases=20)
    base_args = ["--db", str(db), "--out", str(tmp_path / "out")]
    ok = CliRunner().invoke(
        cli, ["compare", "before", "after", *base_args, "--fail-if-regress", "valid_json"]
    )
    assert ok.exit_code == 0, ok.output
    assert f"{BASE.name} -> {TUNED.name} (20 cases, B minus A):" in ok.output
    failed = CliRunner().invoke(
        cli, ["compare", "after", "before", *base_args, "--fail-if-regress", "valid_json:0.01"]
    )
    assert failed.exit_code == 1
    drop = after.models[0].score.valid_json.value - before.models[0].score.valid_json.value
    assert f"Error: regression: valid_json dropped by {drop:.3f}" in failed.output
    unknown = CliRunner().invoke(
        cli, ["compare", "before", "after", *base_args, "--fail-if-regress", "speed"]
    )
    assert unknown.exit_code == 2
    assert "valid metrics: " + ", ".join(METRIC_NAMES) in unknown.output
