"""`benchsel report` ranks as the run's selection.json did, takes select's constraint and weight options,
and exports metrics as JSON and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_report import make_run

from benchsel.cli.main import cli
from benchsel.report.export import export_dict, metric_estimates
from benchsel.summary import RunSummary


@pytest.fixture
def stored(tmp_path: Path) -> RunSummary:
    store, summary = make_run(tmp_path, cases=6, profiles=3)
    store.close()
    return summary


def invoke(tmp_path: Path, *args: str) -> Result:
    common = ["--db", str(tmp_path / "runs.sqlite"), "--out", str(tmp_path / "out")]
    return CliRunner().invoke(cli, [*args, *common])


def report_md(tmp_path: Path, summary: RunSummary) -> str:
    return (tmp_path / "out" / summary.run.id / "report.md").read_text(encoding="utf-8")


def test_report_uses_the_selection_just_made(tmp_path: Path, stored: RunSummary) -> None:
    selected = invoke(
        tmp_path, "select", stored.run.id, "--vram", "8GiB", "--reserve", "3GiB", "--min-tps", "5"
    )
    assert selected.exit_code == 0, selected.output
    result = invoke(tmp_path, "report", stored.run.id, "--format", "md")
    assert result.exit_code == 0, result.output
    selection_path = tmp_path / "out" / stored.run.id / "selection.json"
    assert result.output.splitlines()[0] == f"constraints and weights from {selection_path}"
    text = report_md(tmp_path, stored)
    assert "Constraints: VRAM 8.0 GiB, reserve 3.0 GiB" in text and "min 5 tok/s" in text
    assert "not checked" not in text


def test_report_options_change_only_what_they_name(tmp_path: Path, stored: RunSummary) -> None:
    assert invoke(tmp_path, "select", stored.run.id, "--vram", "8GiB", "--reserve", "3GiB").exit_code == 0
    result = invoke(tmp_path, "report", stored.run.id, "--format", "md", "--reserve", "2GiB", "-c", "8192")
    assert result.exit_code == 0, result.output
    assert "Constraints: VRAM 8.0 GiB, reserve 2.0 GiB, num_ctx 8192 x 1" in report_md(tmp_path, stored)


def test_report_takes_selects_weight_and_kv_options(tmp_path: Path, stored: RunSummary) -> None:
    args = ["report", stored.run.id, "--format", "md", "--vram", "8GiB", "--kv-cache", "q8_0"]
    result = invoke(tmp_path, *args, "--weight", "valid_json=0.9", "--train-vram", "16GiB")
    assert result.exit_code == 0, result.output
    assert "KV q8_0" in report_md(tmp_path, stored) and "train lora in 16.0 GiB" in report_md(
        tmp_path, stored
    )
    bad = invoke(tmp_path, "report", stored.run.id, "--weight", "nosuch=1")
    assert bad.exit_code == 2 and "unknown weight 'nosuch'" in bad.output


def write_broken_selection(tmp_path: Path, stored: RunSummary) -> Path:
    """The run's selection.json as `benchsel select` wrote it, then hand-edited: a constraint it lacks."""
    assert invoke(tmp_path, "select", stored.run.id, "--vram", "8GiB").exit_code == 0
    path = tmp_path / "out" / stored.run.id / "selection.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["constraints"]["vram"] = 1
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_broken_selection_json_is_named(tmp_path: Path, stored: RunSummary) -> None:
    path = write_broken_selection(tmp_path, stored)
    result = invoke(tmp_path, "report", stored.run.id)
    assert result.exit_code == 2
    assert f"{path}: constraints.vram: Extra inputs are not permitted" in result.output
    assert f"benchsel select {stored.run.id}" in result.output


def test_a_selection_json_an_editor_saved_with_a_bom_is_read_and_one_not_json_is_named(
    tmp_path: Path, stored: RunSummary
) -> None:
    assert invoke(tmp_path, "select", stored.run.id, "--vram", "8GiB").exit_code == 0
    path = tmp_path / "out" / stored.run.id / "selection.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = invoke(tmp_path, "report", stored.run.id, "--format", "md")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"constraints and weights from {path}"
    path.write_text('{"version": 2,', encoding="utf-8")
    result = invoke(tmp_path, "report", stored.run.id, "--format", "md")
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: {path}: not valid JSON: Expecting property name enclosed in double quotes at line 1, "
        f"column 15 - write it again with `benchsel select {stored.run.id}` or delete it"
    )


def test_an_older_selection_json_is_migrated_when_a_report_reads_it(
    tmp_path: Path, stored: RunSummary
) -> None:
    assert invoke(tmp_path, "select", stored.run.id, "--vram", "8GiB", "--reserve", "3GiB").exit_code == 0
    path = tmp_path / "out" / stored.run.id / "selection.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["version"] = 1  # the version 1 layout: entries without labels
    for ranking in data["rankings"].values():
        for entry in ranking["entries"]:
            entry.pop("label")
    path.write_text(json.dumps(data), encoding="utf-8")
    result = invoke(tmp_path, "report", stored.run.id, "--format", "md")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"constraints and weights from {path}"
    assert "Constraints: VRAM 8.0 GiB, reserve 3.0 GiB" in report_md(tmp_path, stored)


def test_export_json_and_csv_hold_metrics_with_intervals_and_cases(
    tmp_path: Path, stored: RunSummary
) -> None:
    result = invoke(tmp_path, "report", stored.run.id, "--format", "json,csv")
    assert result.exit_code == 0, result.output
    target = tmp_path / "out" / stored.run.id
    assert sorted(p.name for p in target.iterdir()) == ["cases.csv", "metrics.json", "models.csv"]
    data = json.loads((target / "metrics.json").read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(export_dict(stored)))
    first = stored.models[0]
    f1 = first.score.content.entities.f1
    model = data["models"][0]
    assert model["model"] == first.name
    assert (model["content_entity_f1"], model["content_entity_f1_low"], model["content_entity_f1_high"]) == (
        f1.value,
        f1.low,
        f1.high,
    )
    with (target / "models.csv").open(encoding="utf-8", newline="") as fh:
        models = list(csv.DictReader(fh))
    assert [row["model"] for row in models] == [m.name for m in stored.models]
    for name in metric_estimates(first.score):
        assert {name, f"{name}_low", f"{name}_high"} <= set(models[0])
    assert float(models[0]["valid_json"]) == pytest.approx(first.score.valid_json.value)
    with (target / "cases.csv").open(encoding="utf-8", newline="") as fh:
        cases = list(csv.DictReader(fh))
    assert len(cases) == sum(len(m.score.per_reply) for m in stored.models) == len(data["cases"])
    assert {row["case_id"] for row in cases} == {c.id for c in stored.evalset.cases}


def test_compare_refuses_export_formats(tmp_path: Path, stored: RunSummary) -> None:
    result = invoke(tmp_path, "compare", stored.run.id, stored.run.id, "--format", "csv")
    assert result.exit_code == 2 and "unknown report format csv - use md, html" in result.output


@pytest.mark.integration
def test_config_run_select_report_on_the_embedded_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first hour on a machine without a GPU: a run from a file, select with a budget, the report
    and its export agree with select, and the CPU-measured memory is not taken for VRAM."""
    from test_cli_run import invoke as run_cli

    db, out = tmp_path / "runs.sqlite", tmp_path / "reports"
    config = tmp_path / "run.toml"
    config.write_text(
        'models = ["smollm2:135m"]\nbackend = "llamacpp"\nlimit = 3\nnum-predict = 16\n'
        f'db = "{db}"\nout = "{out}"\n'
    )
    code, stdout, stderr = run_cli(["run", "--config", str(config), "--limit", "1", "-c", "1024"], capsys)
    assert code == 0, stderr
    run_id = stdout.split("run id: ")[1].split()[0]
    code, stdout, stderr = run_cli(
        [
            "select",
            "latest",
            "--vram",
            "8GiB",
            "--reserve",
            "3GiB",
            "-c",
            "1024",
            "--db",
            str(db),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, stderr
    selection = json.loads((out / run_id / "selection.json").read_text(encoding="utf-8"))
    entry = selection["rankings"]["deploy_now"]["entries"][0]
    assert entry["vram"]["label"].startswith("estimated (") and "RAM on the CPU" in entry["vram"]["label"]
    assert entry["vram"]["measured_bytes"] is None
    code, stdout, stderr = run_cli(
        ["report", "latest", "--format", "md,json,csv", "--db", str(db), "--out", str(out)], capsys
    )
    assert code == 0, stderr
    text = (out / run_id / "report.md").read_text(encoding="utf-8")
    assert "VRAM 8.0 GiB, reserve 3.0 GiB, num_ctx 1024" in text and "not checked" not in text
    assert "(1 of 24 cases run" in text
    metrics = json.loads((out / run_id / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["run"]["options"]["limit"] == 1 and metrics["run"]["options"]["num_ctx"] == 1024
    assert len(metrics["cases"]) == 1 and metrics["models"][0]["memory_vram_bytes"] is None


def test_export_writes_null_for_a_metric_without_a_value(tmp_path: Path, stored: RunSummary) -> None:
    from dataclasses import replace

    from benchsel.report.export import write_csv, write_json
    from benchsel.scoring.metrics import Estimate

    nan = Estimate(float("nan"), float("nan"), float("nan"))
    first = stored.models[0]
    broken = replace(first, score=replace(first.score, valid_json=nan))
    summary = replace(stored, models=(broken,))
    data = json.loads(write_json(summary, tmp_path).read_text(encoding="utf-8"))
    assert data["models"][0]["valid_json"] is None and data["models"][0]["valid_json_low"] is None
    models_csv, _ = write_csv(summary, tmp_path)
    with models_csv.open(encoding="utf-8", newline="") as fh:
        assert next(csv.DictReader(fh))["valid_json"] == ""


def test_after_a_run_a_broken_selection_json_is_a_note_not_an_error(
    tmp_path: Path, stored: RunSummary
) -> None:
    from benchsel.report.saved import selection_after_run

    selection, note = selection_after_run(stored, tmp_path / "out")
    assert note is None and selection is not None and selection.constraints.vram_bytes is None
    path = write_broken_selection(tmp_path, stored)
    selection, note = selection_after_run(stored, tmp_path / "out")
    assert selection is not None and note is not None
    assert note.startswith(f"{path}: constraints.vram: Extra inputs are not permitted")
