"""`benchsel probe` end to end on tiny settings, with real llama-server and the real trainer: a run,
a probe stored with it, and the third ranking in select's output, selection.json and both reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from benchsel import api
from benchsel.cli.main import cli
from benchsel.hardware import detect_gpus


def build_tiny_gguf(root: Path) -> Path:
    """The train tests' tiny random Llama as an F32 GGUF: llama-server serves it, the trainer trains it."""
    pytest.importorskip("trl")
    from benchsel.train.export import export_base_gguf
    from benchsel.train.tiny import build_tiny_llama

    return export_base_gguf(build_tiny_llama(root / "hf"), root / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def select_and_report(run_id: str, db: Path, out: Path) -> tuple[str, dict, str, str]:
    selected = invoke("select", run_id, "--vram", "8GiB", "--db", str(db), "--out", str(out))
    assert selected.exit_code == 0, selected.output
    reported = invoke("report", run_id, "--db", str(db), "--out", str(out))
    assert reported.exit_code == 0, reported.output
    folder = out / run_id
    data = json.loads((folder / "selection.json").read_text())
    return selected.output, data, (folder / "report.md").read_text(), (folder / "report.html").read_text()


@pytest.mark.integration
def test_fewshot_probe_ranks_the_demo_models(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run = api.run(
        ["smollm2:135m", "gemma3:270m"], evalset="extraction-v1", backend="llamacpp",
        limit=4, num_predict=24, threads=2, db=db,
    )  # fmt: skip
    result = invoke(
        "probe", run.run.id, "--method", "fewshot", "--shots", "1", "--split", "probe=0.5",
        "--db", str(db), "--threads", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Probing smollm2:135m (fewshot) on 2 probe cases" in result.output
    if not detect_gpus():  # without a GPU the probe says how long it will take, before it starts
        assert "No GPU: expect about" in result.output.split("Probing")[0]
    assert "Stored probe " in result.output and "2 probe cases, 2 left for the verdict" in result.output

    output, data, md, html = select_and_report(run.run.id, db, tmp_path / "out")
    assert "Measured trainability" in output
    third = data["rankings"]["measured_trainability"]
    assert third["method"] == "fewshot" and third["probe_cases"] == 2
    assert {e["model"] for e in third["entries"]} == {"smollm2:135m", "gemma3:270m"}
    assert data["winners"]["measured_trainability"] == third["entries"][0]["model"]
    for entry in third["entries"]:
        figures = entry["figures"]
        assert figures["status"] == "ok" and figures["cases"] == 2
        assert figures["gain"]["value"] == pytest.approx(
            figures["probed"]["value"] - figures["zero_shot"]["value"]
        )
        assert figures["before_run_id"] and figures["after_run_id"] != figures["before_run_id"]
    assert f"Measured: {third['winner']} - after the probe as-is entity F1" in output
    assert "### Measured trainability" in md and "few-shot probe (1 worked examples" in md
    assert "<h3>Measured trainability</h3>" in html and 'id="plot-predicted-measured"' in html


@pytest.mark.train
@pytest.mark.integration
def test_pilot_lora_probe_trains_measures_and_is_ranked(tmp_path: Path, tiny_gguf: Path) -> None:
    db = tmp_path / "runs.sqlite"
    run = api.run([str(tiny_gguf)], evalset="extraction-v1", backend="llamacpp", limit=4, num_predict=8,
                  threads=2, db=db)  # fmt: skip
    result = invoke(
        "probe", run.run.id, "--method", "lora", "--steps", "2", "--batch", "2", "--grad-accum", "1",
        "--max-seq-len", "2048", "--db", str(db), "--out", str(tmp_path / "probes"), "--threads", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    output, data, md, html = select_and_report(run.run.id, db, tmp_path / "out")
    third = data["rankings"]["measured_trainability"]
    assert third["method"] == "lora" and third["winner"] == str(tiny_gguf)
    [entry] = third["entries"]
    training = entry["figures"]["training"]
    assert training["steps"] == 2 and len(training["train_losses"]) == 2
    assert training["train_seconds"] > 0 and training["peak_memory_bytes"] > 0
    assert Path(training["adapter"]).is_file()
    assert entry["figures"]["cases"] == 2 and entry["figures"]["probed"] is not None
    assert "pilot LoRA (2 steps, the same data, seed and settings for every model)" in output
    assert "trained 2 steps in" in md and "<h3>Measured trainability</h3>" in html
