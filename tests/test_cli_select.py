"""`benchsel select` and `benchsel models` through click's CliRunner, on a real SQLite store."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_selection import RUN_ID, build_motivating_store

from benchsel import hardware
from benchsel.cli.main import cli
from benchsel.errors import UsageError
from benchsel.selection import evalset_for_training, load_selection


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
    monkeypatch.setattr(hardware.gpu, "detect_gpus", lambda: [])
    result = invoke("select", RUN_ID, "--db", str(db))
    assert result.exit_code == 2
    assert "Error: no GPU detected - pass --vram, e.g. --vram 8GiB" in result.output


def test_a_detected_gpu_is_the_budget(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gpu = hardware.Gpu(0, "NVIDIA GeForce RTX 4060", "nvidia", 8 * hardware.GIB, 0)
    monkeypatch.setattr(hardware.gpu, "detect_gpus", lambda: [gpu])
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
        (("--reserve", "three"), "Error: --reserve: cannot read 'three' as a size"),
        (("--reserve", "9GiB"), "the reserve must be smaller than the VRAM budget"),
        (("--reserve", "3"), "Error: --reserve: size '3' has no unit - write e.g. 3GiB; units: B, KiB/K"),
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


@pytest.mark.integration  # reads the demo GGUFs
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


@pytest.mark.integration  # reads the demo GGUFs
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


def test_a_vram_size_without_a_unit_is_an_error_that_shows_the_units(db: Path, tmp_path: Path):
    result = invoke("select", RUN_ID, "--vram", "8", "--db", str(db), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: --vram: size '8' has no unit - write e.g. 8GiB; "
        "units: B, KiB/K, MiB/M, GiB/G, TiB/T (binary), KB, MB, GB, TB (decimal)"
    )
    assert not (tmp_path / "o").exists()


def test_select_on_an_eval_set_sharing_no_case_is_an_error_that_keeps_the_selection(db: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert invoke("select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out)).exit_code == 0
    good = (out / RUN_ID / "selection.json").read_text()
    result = invoke("select", RUN_ID, "--vram", "8GiB", "--evalset", "extraction-v1", "--db", str(db),
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: run {RUN_ID} has no reply to any case of eval set 'extraction-v1' (no case id in common) "
        "- pass the eval set the run was made with (motivating), or leave out --evalset"
    )
    assert (out / RUN_ID / "selection.json").read_text() == good


def test_the_selection_stores_the_eval_set_path_and_hash(db: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert invoke("select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out)).exit_code == 0
    record = load_selection(out / RUN_ID / "selection.json")
    assert record.evalset.path == str((tmp_path / "evalset").resolve())
    assert evalset_for_training(record).content_hash == record.evalset.hash

    cases = tmp_path / "evalset" / "cases.jsonl"
    cases.write_text(cases.read_text() + "\n")  # the content changed since the selection
    with pytest.raises(UsageError, match=r"changed since the selection was made .* pass --evalset DIR"):
        evalset_for_training(record)
    moved = record.model_copy(update={"evalset": record.evalset.model_copy(update={"path": "/gone"})})
    gone = r"the selection's eval set 'motivating' at /gone cannot be loaded .* pass --evalset DIR"
    with pytest.raises(UsageError, match=gone):
        evalset_for_training(moved)


def edited(tmp_path: Path, db: Path, **changes: object) -> Path:
    out = tmp_path / "out"
    assert invoke("select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out)).exit_code == 0
    data = json.loads((out / RUN_ID / "selection.json").read_text())
    data.update(changes)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"winners": "ok"}, "winners: Input should be a valid dictionary or instance of Winners (got 'ok')"),
        ({"evalset": "x"}, "evalset: Input should be a valid dictionary or instance of EvalSetRef (got 'x')"),
        (
            {"train_base": [1, 2, 3]},
            "train_base: Input should be a valid dictionary or instance of TrainBase",
        ),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"version": 7}, "version 7 is not a selection.json layout this benchsel reads (1 or 2)"),
    ],
)
def test_a_hand_edited_selection_is_one_clear_line_before_any_training(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], message: str
):
    from benchsel.train import pipeline

    monkeypatch.setattr(pipeline, "_module_available", lambda name: True)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(pipeline, "build_data", never)
    path = edited(tmp_path, db, **changes)
    result = invoke("train", "--from-selection", str(path), "--n", "8", "--max-steps", "1")
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(f"Error: {path}: ")
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_version_1_selection_is_migrated_on_read(db: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert invoke("select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out)).exit_code == 0
    data = json.loads((out / RUN_ID / "selection.json").read_text())
    # the version 1 layout: no eval-set path, no labels, close calls with both marginal estimates
    data["version"] = 1
    data["evalset"] = {"name": data["evalset"]["name"], "hash": data["evalset"]["hash"]}
    data.pop("failed")
    for ranking in data["rankings"].values():
        ranking.pop("no_winner")
        ranking["close_call"] = {
            "metric": "as_is_entity_f1", "first": "a", "second": "b", "cases": 20, "text": "...",
            "first_estimate": {"value": 0.7, "low": 0.6, "high": 0.8},
            "second_estimate": {"value": 0.6, "low": 0.5, "high": 0.7},
            "difference": {"value": 0.1, "low": -0.05, "high": 0.2},
        }  # fmt: skip
        for entry in ranking["entries"]:
            entry.pop("label")
            entry.pop("found_gold")
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(data))
    record = load_selection(old)
    assert record.version == 2 and record.evalset.path is None
    assert record.winners.train == "gemma4:e2b"
    entry = record.rankings["deploy_now"].entries[0]
    assert entry.label == entry.model


def test_select_with_no_winner_says_why(tmp_path: Path):
    from test_selection import THINKING_MODELS

    db = build_motivating_store(tmp_path)
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        # keep only the four thinking models: none of them ever reached an answer
        for table in ("results", "models"):
            column = "model" if table == "results" else "name"
            marks = ",".join("?" * len(THINKING_MODELS))
            connection.execute(f"DELETE FROM {table} WHERE {column} NOT IN ({marks})", list(THINKING_MODELS))
    out = tmp_path / "out"
    result = invoke("select", RUN_ID, "--vram", "8GiB", "--db", str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert any(
        line.startswith("Train: no winner: no candidate has a score above zero on the task")
        for line in lines(result)
    )
    data = json.loads((out / RUN_ID / "selection.json").read_text())
    assert data["winners"] == {"train": None, "deploy_now": None}
    refused = invoke("train", "--from-selection", str(out / RUN_ID / "selection.json"))
    assert refused.exit_code == 2
    assert "no candidate has a score above zero" in refused.output and "pass --base" in refused.output
