"""Measured trainability without an engine: the split, the few-shot prompt and its worked examples,
paired figures, the stored probe, the third ranking, the estimate, and select/report showing it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_selection import RUN_ID, build_motivating_store

from benchsel.cli.main import cli
from benchsel.errors import UsageError
from benchsel.evalset import load_evalset
from benchsel.probe import ProbeFigures, measured_ranking, parse_split, split_cases
from benchsel.probe.estimate import estimate_model_seconds
from benchsel.probe.fewshot import worked_examples
from benchsel.probe.figures import Interval, paired_figures
from benchsel.probe.measure import ProbePlan, pilot_settings, synthetic_count
from benchsel.probe.ranking import DISRUPTED
from benchsel.probe.split import subset, with_shots
from benchsel.records import Reply
from benchsel.store import Store, StoredProbe, StoredResult
from benchsel.summary import summarize_model
from benchsel.train.data import case_example, find_leaks

FULL = load_evalset("extraction-v1-full")


# ---- the split -----------------------------------------------------------------------------------


def test_split_is_disjoint_complete_stratified_and_seeded() -> None:
    split = split_cases(FULL.cases, 0.5, seed=3)
    assert set(split.probe).isdisjoint(split.test)
    assert sorted(split.probe + split.test) == sorted(c.id for c in FULL.cases)
    for difficulty in ("simple", "medium", "complex", "adversarial"):
        group = [c.id for c in FULL.cases if c.difficulty == difficulty]
        probed = [i for i in group if i in split.probe]
        assert abs(len(probed) - len(group) / 2) <= 0.5
    assert split_cases(FULL.cases, 0.5, seed=3) == split
    assert split_cases(FULL.cases, 0.5, seed=4).probe != split.probe


def test_other_cases_move_at_most_one_case_per_group() -> None:
    """Within a group the probe takes a prefix of a fixed order: the split of a limited run agrees
    with the full one but for the case at the boundary."""
    whole = split_cases(FULL.cases, 0.5, seed=0)
    simple = [c for c in FULL.cases if c.difficulty == "simple"]
    alone = split_cases(simple + [c for c in FULL.cases if c.difficulty == "complex"], 0.5, seed=0)
    ids = {c.id for c in simple}
    mine, theirs = {i for i in alone.probe if i in ids}, {i for i in whole.probe if i in ids}
    assert mine <= theirs or theirs <= mine
    assert len(mine ^ theirs) <= 1


@pytest.mark.parametrize(("text", "fraction"), [("probe=0.5", 0.5), ("0.3", 0.3), ("probe=0.25", 0.25)])
def test_parse_split(text: str, fraction: float) -> None:
    assert parse_split(text) == fraction


@pytest.mark.parametrize("text", ["probe=1", "probe=0", "test=0.5", "probe=half", "a=b=c"])
def test_a_bad_split_says_how_to_write_it(text: str) -> None:
    with pytest.raises(UsageError, match=r"--split .*probe="):
        parse_split(text)


def test_groups_of_one_case_still_fill_both_sides() -> None:
    one_each = [
        next(c for c in FULL.cases if c.difficulty == d)
        for d in ("simple", "medium", "complex", "adversarial")
    ]
    split = split_cases(one_each, 0.5)
    assert len(split.probe) == 2 and len(split.test) == 2


def test_a_split_that_leaves_a_side_empty_is_refused() -> None:
    with pytest.raises(UsageError, match="leaves one side empty"):
        split_cases(FULL.cases[:1], 0.5)


# ---- few-shot ------------------------------------------------------------------------------------


def test_worked_examples_are_synthetic_deterministic_and_leak_free() -> None:
    shots = worked_examples(FULL, 3, seed=0)
    assert shots == worked_examples(FULL, 3, seed=0) and len(shots) == 3
    texts = {c.text for c in FULL.cases}
    assert not any(text in texts for text, _ in shots)
    examples = [case_example(c, FULL.prompt, "x") for c in FULL.cases[:2]]
    assert find_leaks(examples, FULL)  # the check the shots pass does catch eval-set texts
    assert all(json.loads(answer)["entities"] for _, answer in shots)


def test_zero_shots_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--shots 0"):
        worked_examples(FULL, 0)


def test_the_few_shot_prompt_puts_the_examples_before_the_question() -> None:
    shots = [("Ann leads Acme.", '{"entities":[]}'), ("Bo joined Zed.", '{"entities":[{"name":"Bo"}]}')]
    probe_set = subset(FULL, [c.id for c in FULL.cases[:5]])
    shown = with_shots(probe_set, shots)
    messages = shown.prompt.messages("Cy runs Qux.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == FULL.prompt.user_template.replace("{text}", "Ann leads Acme.")
    assert messages[2]["content"] == shots[0][1] and messages[-1]["content"].endswith(
        FULL.prompt.user_template.replace("{text}", "Cy runs Qux.").split("{text}")[-1]
    )
    assert shown.cases == probe_set.cases and len(shown.cases) == 5
    # its own hashes: its answers are never mistaken for zero-shot ones, nor its runs resumed as theirs
    assert shown.prompt.sha256 != FULL.prompt.sha256 and shown.content_hash != FULL.content_hash
    assert probe_set.content_hash == FULL.content_hash  # the probe split reuses the run's answers


# ---- paired figures ------------------------------------------------------------------------------


def _summary(name: str, answers: dict[str, str]):  # -> ModelSummary
    results = [
        StoredResult("r", name, case_id, 0, f"k-{case_id}", Reply(content=text, wall_s=1.0))
        for case_id, text in answers.items()
    ]
    return summarize_model(subset(FULL, list(answers)), name, results)


def test_paired_figures_measure_the_gain_on_the_same_cases() -> None:
    cases = FULL.cases[:12]
    gold = {c.id: json.dumps(c.gold.model_dump(exclude_none=True)) for c in cases}
    empty = {c.id: '{"entities": [], "relationships": []}' for c in cases}
    half = {c.id: gold[c.id] if i % 2 else empty[c.id] for i, c in enumerate(cases)}
    figures = paired_figures("m", _summary("m", half), _summary("m", gold), seed=1)
    assert figures.cases == 12 and figures.probed is not None and figures.gain is not None
    assert figures.probed.value == pytest.approx(1.0)
    assert figures.zero_shot is not None and 0 < figures.zero_shot.value < 1
    assert figures.gain.value == pytest.approx(1.0 - figures.zero_shot.value)
    assert 0 < figures.gain.low <= figures.gain.value <= figures.gain.high
    assert figures.p_not_better is not None and figures.p_not_better < 0.05


# ---- the store -----------------------------------------------------------------------------------


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_the_probe_migration_adds_its_two_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        assert "005_probes" in store.applied_migrations()
    assert columns(path, "probes") == ["id", "run_id", "method", "created_at", "settings_json", "split_json"]
    assert columns(path, "probe_models") == ["probe_id", "model", "figures_json"]


def figures(model: str, zero: float, after: float, *, status: str = "ok") -> dict:
    if status != "ok":
        return ProbeFigures(model=model, status="failed", error="no GGUF").model_dump()
    return ProbeFigures(
        model=model,
        cases=10,
        zero_shot=Interval(value=zero, low=zero - 0.1, high=zero + 0.1),
        probed=Interval(value=after, low=after - 0.1, high=after + 0.1),
        gain=Interval(value=after - zero, low=after - zero - 0.05, high=after - zero + 0.05),
        p_not_better=0.01,
        seconds=12.0,
    ).model_dump()


def store_probe(db: Path, run_id: str, created_at: str, models: dict[str, dict], pid: str = "p1") -> None:
    with Store(db) as store:
        store.save_probe(
            StoredProbe(
                pid, run_id, "fewshot", created_at, {"shots": 2, "seed": 0}, {"probe": ["a"], "test": ["b"]}
            )
        )
        for name, data in models.items():
            store.save_probe_model(pid, name, data)


def test_the_latest_probe_of_a_run_comes_back_whole(tmp_path: Path) -> None:
    db = build_motivating_store(tmp_path)
    store_probe(db, RUN_ID, "2025-01-01T00:00:00+00:00", {"gemma3:4b": figures("gemma3:4b", 0.5, 0.6)})
    store_probe(
        db, RUN_ID, "2025-01-02T00:00:00+00:00", {"gemma4:e2b": figures("gemma4:e2b", 0.4, 0.9)}, "p2"
    )
    with Store(db) as store:
        latest = store.latest_probe(RUN_ID)
        assert store.latest_probe("other") is None
    assert latest is not None and latest.id == "p2" and list(latest.models) == ["gemma4:e2b"]
    assert ProbeFigures.model_validate(latest.models["gemma4:e2b"]).probed.value == 0.9


# ---- the ranking ---------------------------------------------------------------------------------


def test_measured_ranking_orders_by_the_score_after_the_probe_and_puts_failures_last() -> None:
    stored = StoredProbe(
        "p", "r", "lora", "now", {"steps": 20}, {"probe": ["a", "b"], "test": ["c"]},
        {"a": figures("a", 0.7, 0.72), "b": figures("b", 0.2, 0.8), "c": figures("c", 0, 0, status="failed")},
    )  # fmt: skip
    ranking = measured_ranking(stored)
    assert [(e.model, e.rank, e.excluded) for e in ranking.entries] == [
        ("b", 1, False), ("a", 2, False), ("c", None, True)
    ]  # fmt: skip
    assert ranking.winner is not None and ranking.winner.model == "b"
    assert ranking.entries[0].reason == (
        "after the probe as-is entity F1 0.80 [0.70, 0.90], gain +0.60 [+0.55, +0.65] over zero-shot "
        "0.20 on the same 10 cases"
    )
    assert ranking.entries[2].reason == "excluded: probe failed: no GGUF"
    assert ranking.description == "pilot LoRA (20 steps, the same data, seed and settings for every model)"
    data = ranking.to_json()
    assert data["winner"] == "b" and data["probe_cases"] == 2 and data["test_cases"] == 1


def test_a_pilot_that_made_a_model_worse_says_it_measured_a_disruption() -> None:
    # As in the decision study: two steps at lr 1e-3 sent Qwen2.5-Coder 0.5B into a repetition loop
    # (0.81 -> 0.00 on the probe cases) while its training loss fell.
    stored = StoredProbe(
        "p", "r", "lora", "now", {"steps": 2}, {"probe": ["a", "b"], "test": ["c"]},
        {"a": figures("a", 0.8, 0.0), "b": figures("b", 0.2, 0.18)},
    )  # fmt: skip
    a, b = sorted(measured_ranking(stored).entries, key=lambda e: e.model)
    assert a.reason.endswith(DISRUPTED) and "gain -0.80" in a.reason
    assert DISRUPTED not in b.reason  # -0.02 [-0.07, +0.03]: not worse for sure
    fewshot = StoredProbe("p", "r", "fewshot", "now", {"shots": 3}, stored.split, stored.models)
    assert all(DISRUPTED not in e.reason for e in measured_ranking(fewshot).entries)


# ---- select and report show it -------------------------------------------------------------------


def test_select_and_both_reports_show_the_third_ranking(tmp_path: Path) -> None:
    db = build_motivating_store(tmp_path)
    store_probe(
        db, RUN_ID, "2025-01-02T00:00:00+00:00",
        {"gemma3:4b": figures("gemma3:4b", 0.6, 0.95), "gemma4:e2b": figures("gemma4:e2b", 0.5, 0.7)},
    )  # fmt: skip
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "Measured trainability" in result.output
    assert (
        "Measured: gemma3:4b - after the probe as-is entity F1 0.95 [0.85, 1.05], gain +0.35 [+0.30, +0.40] "
        "over zero-shot 0.60 on the same 10 cases"
    ) in result.output
    data = json.loads((out / RUN_ID / "selection.json").read_text())
    assert data["winners"]["measured_trainability"] == "gemma3:4b"
    third = data["rankings"]["measured_trainability"]
    assert [e["model"] for e in third["entries"]] == ["gemma3:4b", "gemma4:e2b"]
    assert third["entries"][0]["predicted_trainable_potential"] == pytest.approx(
        next(
            e["score"]
            for e in data["rankings"]["trainable_potential"]["entries"]
            if e["model"] == "gemma3:4b"
        )
    )
    result = runner.invoke(cli, ["report", RUN_ID, "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    md = (out / RUN_ID / "report.md").read_text()
    html = (out / RUN_ID / "report.html").read_text()
    assert "### Measured trainability" in md and "| 1 | gemma3:4b | 0.950 |" in md
    assert "<h3>Measured trainability</h3>" in html
    assert 'id="plot-predicted-measured"' in html


def test_select_without_a_probe_keeps_two_rankings(tmp_path: Path) -> None:
    db = build_motivating_store(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Measured trainability" not in result.output
    data = json.loads((out / RUN_ID / "selection.json").read_text())
    assert "measured_trainability" not in data["rankings"]


# ---- settings, estimate and the command's usage errors -------------------------------------------


def test_every_pilot_gets_the_same_settings_and_fresh_data_for_each_step() -> None:
    plan = ProbePlan("r", "lora", steps=7, seed=5, settings={"per_device_batch_size": 2})
    settings = pilot_settings(plan)
    assert (settings.max_steps, settings.seed, settings.epochs, settings.per_device_batch_size) == (
        7,
        5,
        1.0,
        2,
    )
    assert synthetic_count(plan, settings) * 0.9 >= 7 * settings.effective_batch_size


def test_a_bad_pilot_setting_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="pilot LoRA setting per_device_batch_size"):
        pilot_settings(ProbePlan("r", "lora", settings={"per_device_batch_size": 0}))


def test_the_estimate_grows_with_steps_and_cases() -> None:
    model = _summary("m", {c.id: "{}" for c in FULL.cases[:4]})
    few = estimate_model_seconds(model, method="lora", cases=10, steps=5)
    more = estimate_model_seconds(model, method="lora", cases=10, steps=50)
    assert 0 < few < more
    assert estimate_model_seconds(model, method="fewshot", cases=20, shots=3) > estimate_model_seconds(
        model, method="fewshot", cases=10, shots=3
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "fewshot", "--split", "probe=2"], "Error: --split 'probe=2': the probe share must be"),
        (["--method", "lora", "--steps", "0"], "Error: --steps 0: train at least 1 step"),
        (["--method", "fewshot", "--top", "0"], "Error: --top 0: probe at least 1 model"),
        (["--method", "fewshot", "--models", "nope"], "Error: run r-motivating has no model 'nope'"),
    ],
)
def test_bad_probe_options_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    db = build_motivating_store(tmp_path)
    result = CliRunner().invoke(cli, ["probe", RUN_ID, "--db", str(db), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message) and len(result.output.strip().splitlines()) == 1
