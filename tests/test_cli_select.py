"""`benchsel select` and `benchsel models` through click's CliRunner, on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_selection import RUN_ID, build_motivating_store

from benchsel import hardware
from benchsel.cli.main import cli


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return build_motivating_store(tmp_path)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "120"})


def lines(result: Result) -> list[str]:
    return [line.rstrip() for line in result.output.splitlines()]


def test_select_on_the_shared_8_gib_card(db: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = invoke(
        "select", RUN_ID, "--vram", "8GiB", "--reserve", "3GiB", "--db", str(db), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    got = lines(result)
    assert "Constraints: VRAM 8.0 GiB, reserve 3.0 GiB, num_ctx 4096 x 1, KV f16" in got
    assert (
        "Train: gemma4:e2b - fits 8.0 GiB - 3.0 GiB reserve with 262.0 MiB to spare at num_ctx 4096, "
        "measured (ollama /api/ps); content recall 1.00, relationship F1 0.29 but 25% invalid JSON: "
        "format debt that LoRA fixes cheaply"
    ) in got
    assert (
        "  -. gemma4:e4b: excluded: needs 8.8 GiB (estimated) but 8.0 GiB - 3.0 GiB reserve leaves 5.0 GiB"
        in got
    )
    assert (
        "Flag: qwen3:4b: thinking: 100% of its output came before any JSON; 20/20 replies hit num_predict"
        in got
    )
    assert f"Wrote {out / RUN_ID / 'selection.json'}" in got
    header = next(line for line in got if "Trainable potential" in line)
    assert "Deploy now" in header  # the two rankings side by side
    data = json.loads((out / RUN_ID / "selection.json").read_text())
    assert data["winners"] == {"train": "gemma4:e2b", "deploy_now": "gemma4:e2b"}
    assert data["constraints"]["vram_bytes"] == 8 * hardware.GIB
    assert data["constraints"]["reserve_bytes"] == 3 * hardware.GIB
    assert data["run_id"] == RUN_ID and data["evalset"]["name"] == "motivating"


def test_select_on_the_whole_card_names_both_winners(db: Path, tmp_path: Path):
    result = invoke("select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    got = lines(result)
    assert any(line.startswith("Train: gemma4:e2b - fits 8.0 GiB with ") for line in got)
    assert any(
        line.startswith("Deploy now: gemma3:4b - fits 8.0 GiB with ")
        and line.endswith("as-is entity F1 0.81, relationship F1 0.29, 100% valid JSON")
        for line in got
    )
    data = json.loads((tmp_path / "out" / RUN_ID / "selection.json").read_text())
    assert data["winners"] == {"train": "gemma4:e2b", "deploy_now": "gemma3:4b"}


def test_no_vram_and_no_gpu_is_a_usage_error(db: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hardware, "detect_gpus", lambda: [])
    result = invoke("select", RUN_ID, "--db", str(db))
    assert result.exit_code == 2
    assert "Error: no GPU detected - pass --vram, e.g. --vram 8GiB" in result.output


def test_a_detected_gpu_is_the_budget(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gpu = hardware.Gpu(0, "NVIDIA GeForce RTX 4060", "nvidia", 8 * hardware.GIB, 0)
    monkeypatch.setattr(hardware, "detect_gpus", lambda: [gpu])
    result = invoke("select", RUN_ID, "--reserve", "3GiB", "--db", str(db), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "Using GPU 0: NVIDIA GeForce RTX 4060, 8.0 GiB (pass --vram to override)" in lines(result)


def test_weight_overrides_from_the_command_line_and_a_file(db: Path, tmp_path: Path):
    result = invoke(
        "select", RUN_ID, "--vram", "8GiB", "--weight", "valid_json=5", "--weight", "schema_valid=5",
        "--db", str(db), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert any(line.startswith("Train: gemma3:4b - ") for line in lines(result))
    weights = tmp_path / "weights.toml"
    weights.write_text("[weights]\nvalid_json = 5.0\nschema_valid = 5.0\n")
    result = invoke("select", RUN_ID, "--vram", "8GiB", "--weights", str(weights), "--db", str(db),
                    "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o" / RUN_ID / "selection.json").read_text())
    assert data["weights"]["valid_json"] == 5.0 and data["winners"]["train"] == "gemma3:4b"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--weight", "recall=1"), "Error: unknown weight 'recall' - valid names: content_entity_recall, "),
        (("--weight", "valid_json=much"), "Error: weight valid_json='much' is not a number"),
        (("--reserve", "three"), "Error: cannot read 'three' as a size"),
        (("--reserve", "9GiB"), "the reserve must be smaller than the VRAM budget"),
    ],
)
def test_bad_options_exit_2_with_the_fix(db: Path, args: tuple[str, ...], message: str):
    result = invoke("select", RUN_ID, "--vram", "8GiB", *args, "--db", str(db))
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_run_exits_2(db: Path):
    result = invoke("select", "nope", "--vram", "8GiB", "--db", str(db))
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output


def test_models_lists_the_demo_models_with_estimated_vram():
    result = invoke("models", "--backend", "llamacpp", "--num-ctx", "2048")
    assert result.exit_code == 0, result.output
    row = next(line for line in lines(result) if "smollm2:135m" in line)
    assert "Q4_1" in row and "135M" in row and "completion" in row
    assert "VRAM @ 2048" in result.output
    # the estimate at 2048 is the same one hardware computes from the file's own metadata
    from benchsel.backends.demo import demo_model_path
    from benchsel.backends.ggufmeta import read_model_info

    path = demo_model_path("smollm2:135m")
    estimate = hardware.estimate_inference_vram(
        read_model_info(path), file_size_bytes=path.stat().st_size, num_ctx=2048
    )
    assert hardware.format_bytes(estimate.total_bytes) in row


def test_models_on_ollama_flags_thinking_models():
    # the loopback speaks Ollama's /api/tags and /api/show from the real GGUF; no generation is needed
    from ollama_loopback import FakeModel, FakeOllama

    from benchsel.backends.demo import demo_model_path

    path = demo_model_path("smollm2:135m")
    models = [FakeModel("smollm2:135m", path, None), FakeModel("thinker:1b", path, None, thinking_text="hmm")]
    with FakeOllama(models) as fake:
        result = invoke("models", "--backend", "ollama", "--host", fake.url)
    assert result.exit_code == 0, result.output
    got = lines(result)
    assert "Models on ollama" in got[0]
    thinker = next(line for line in got if "thinker:1b" in line)
    assert "completion, THINKING" in thinker and "Q4_1" in thinker and "8192" in thinker
    plain = next(line for line in got if "smollm2:135m" in line)
    assert "THINKING" not in plain


def test_models_with_no_ollama_answering_exits_2():
    result = invoke("models", "--backend", "ollama", "--host", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "Error: " in result.output
