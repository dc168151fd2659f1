"""The loop back on the tiny random Llama: synthetic data -> LoRA -> GGUF adapter -> a real llama-server
serving base + adapter -> a stored evaluation run and its before/after comparison; and registration with
the Ollama loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from ollama_loopback import FakeModel, FakeOllama

from benchsel.backends.ollama import OllamaBackend
from benchsel.store import Store
from benchsel.train.register import parse_parameters, register_adapter, sha256_digest


def test_ollama_parameters_text_becomes_create_parameters() -> None:
    text = 'stop "<|im_end|>"\nstop "<|endoftext|>"\ntemperature 0.2\nnum_ctx 4096\n'
    assert parse_parameters(text) == {
        "stop": ["<|im_end|>", "<|endoftext|>"],
        "temperature": 0.2,
        "num_ctx": 4096,
    }


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):  # -> LoopOutcome
    pytest.importorskip("trl")
    from benchsel.loop import train_and_evaluate
    from benchsel.train.lora import TrainSettings
    from benchsel.train.pipeline import TrainPlan
    from benchsel.train.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("pipeline")
    settings = TrainSettings.model_validate(
        {"r": 4, "alpha": 8, "max_steps": 3, "per_device_batch_size": 4, "gradient_accumulation_steps": 1,
         "warmup_ratio": 0.0, "learning_rate": 1e-2, "epochs": 1, "seed": 1}
    )  # fmt: skip
    plan = TrainPlan(
        base=str(build_tiny_llama(root / "tiny")),
        synthetic_n=20,
        settings=settings,
        out_dir=root / "out",
        evaluate=True,
        db=root / "runs.db",
        eval_limit=2,
        eval_num_predict=8,
        threads=1,
        cache_dir=root / "cache",
    )
    return train_and_evaluate(plan)


@pytest.mark.train
@pytest.mark.integration
def test_tiny_llama_trains_exports_and_is_evaluated_with_its_adapter(outcome) -> None:
    out = outcome.out_dir
    assert outcome.data_report.kept == 20 and outcome.training.steps == 3
    assert (out / "data" / "train.jsonl").is_file() and (out / "training_summary.json").is_file()
    assert outcome.adapter_gguf == out / "adapter.gguf" and outcome.adapter_gguf.stat().st_size > 0
    assert outcome.modelfile.read_text().splitlines()[:2] == [
        f"FROM {outcome.base.hf_dir}",
        "ADAPTER adapter.gguf",
    ]
    evaluation = outcome.evaluation
    assert evaluation.engine == "llamacpp"
    before, after = evaluation.before, evaluation.after
    assert before.run.id != after.run.id
    assert before.models[0].name == str(out / "base-f32.gguf")
    assert after.models[0].name == f"{out / 'base-f32.gguf'}+out"  # the fine-tune, told from its base
    assert "+lora:" in after.models[0].snapshot.digest
    assert "+lora:" not in before.models[0].snapshot.digest
    assert all(r.ok for r in after.models[0].results) and len(after.models[0].results) == 2
    with Store(outcome.out_dir.parent / "runs.db") as store:
        assert {r.id for r in store.runs()} >= {before.run.id, after.run.id}
    [pair] = evaluation.comparison.pairs
    assert {path.name for path in evaluation.written} == {"compare.md", "compare.html"}
    assert pair.label in evaluation.written[0].read_text()


@pytest.mark.train
def test_registration_uploads_the_adapter_and_creates_the_model(outcome, smollm2_path: Path) -> None:
    base = FakeModel(
        "smollm2:135m", smollm2_path, engine=None, template="{{ .Prompt }}", parameters='stop "<|im_end|>"'
    )
    with FakeOllama([base]) as fake:
        backend = OllamaBackend(fake.url)
        try:
            name = register_adapter(backend, "tiny-extractor:v1", "smollm2:135m", outcome.adapter_gguf)
        finally:
            backend.close()
        digest = sha256_digest(outcome.adapter_gguf)
        assert httpx.head(f"{fake.url}/api/blobs/{digest}").status_code == 200
        tags = [m["name"] for m in httpx.get(f"{fake.url}/api/tags").json()["models"]]
        created = [body for path, body in fake.requests if path == "/api/create"]
    assert name == "tiny-extractor:v1" and "tiny-extractor:v1" in tags
    assert created == [
        {
            "model": "tiny-extractor:v1",
            "from": "smollm2:135m",
            "adapters": {"adapter.gguf": digest},
            "stream": False,
            "template": "{{ .Prompt }}",
            "parameters": {"stop": ["<|im_end|>"]},
        }
    ]


def _stored_run(options: dict):  # a RunSummary stand-in: only .run.id and .run.options are read
    from types import SimpleNamespace

    return SimpleNamespace(run=SimpleNamespace(id="20261130-000000-abcdef", options=options))


def test_options_on_the_command_line_win_over_the_selections_run() -> None:
    from benchsel.loop import _run_options
    from benchsel.train.pipeline import TrainPlan

    stored = _stored_run({"limit": 3, "num_predict": 256, "temperature": 0.0, "concurrency": 1})
    options, notes, same = _run_options(TrainPlan(base="x", eval_limit=1), stored)
    assert options == {"limit": 1, "num_predict": 256, "temperature": 0.0}
    assert not same  # the base is benchmarked again, with the user's limit
    assert notes == [
        "From the selection's run 20261130-000000-abcdef: num_predict 256",
        "The base is benchmarked again with limit 1 (the selection's run: 3); stored replies are reused",
    ]
    options, notes, same = _run_options(TrainPlan(base="x"), stored)
    assert options["limit"] == 3 and same
    assert notes == ["From the selection's run 20261130-000000-abcdef: limit 3, num_predict 256"]


def test_selection_line_says_what_was_taken(tmp_path: Path) -> None:
    from benchsel.train.pipeline import FromSelection, TrainPlan, selection_line

    selection = FromSelection(tmp_path / "selection.json", "gemma3:4b", "RUN1", "extraction-v1", "h", True)
    line = selection_line(TrainPlan(from_selection=selection.path), selection, "extraction-v1")
    assert line == (
        f"From {selection.path}: base gemma3:4b, eval set extraction-v1, the base's scores from run RUN1 "
        "(options given on the command line win)"
    )
    assert "base gemma3:4b" not in selection_line(TrainPlan(base="other"), selection, "extraction-v1")


@pytest.mark.train
@pytest.mark.integration
def test_the_fine_tune_is_named_and_benchmarked_again_with_run_lora(
    outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`benchsel run --lora adapter.gguf --models BASE`, the adapter given as a relative path."""
    from click.testing import CliRunner

    from benchsel.cli.main import cli

    base = str(outcome.out_dir / "base-f32.gguf")
    assert outcome.fine_tune_name == f"{outcome.base_name}+{outcome.out_dir.name}"
    assert outcome.evaluation.after.models[0].name == f"{base}+{outcome.out_dir.name}"
    assert outcome.evaluation.comparison.labels == ("base", "fine-tune")
    monkeypatch.chdir(outcome.out_dir)
    db = str(outcome.out_dir.parent / "runs.db")
    args = ["run", "--models", base, "--lora", "adapter.gguf", "--limit", "1", "--num-predict", "4",
            "--threads", "1", "--db", db, "--no-report", "--fresh"]  # fmt: skip
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    with Store(Path(db)) as store:
        latest = store.runs()[0]
    assert latest.models == (f"{base}+{outcome.out_dir.name}",) and latest.backend == "llamacpp"
    refused = CliRunner().invoke(cli, [*args[:5], "--backend", "ollama"], env={"COLUMNS": "200"})
    assert refused.exit_code == 2
    assert "--lora needs the embedded engine (--backend llamacpp)" in refused.output


def _tiny_plan(outcome, name: str, host: str):
    from benchsel.train.pipeline import TrainPlan

    return TrainPlan(base=str(outcome.base.hf_dir), register=name, host=host)


@pytest.mark.train
@pytest.mark.integration
def test_registration_merges_with_llama_export_lora_and_creates_from_the_file(outcome) -> None:
    from benchsel.train.pipeline import _register
    from benchsel.train.register import BaseServing

    serving = BaseServing("{{ .Prompt }}", {"stop": ["<|im_end|>"]}, "Apache-2.0")
    stages: list[str] = []
    with FakeOllama([]) as fake:
        plan = _tiny_plan(outcome, "tiny-extractor:v1", fake.url)
        registration = _register(plan, outcome.base, None, outcome.adapter_gguf, serving, stages.append)
        created = [body for path, body in fake.requests if path == "/api/create"]
        tags = [m["name"] for m in httpx.get(f"{fake.url}/api/tags").json()["models"]]
        shown = httpx.post(f"{fake.url}/api/show", json={"model": "tiny-extractor:v1"}).json()
    merged = outcome.out_dir / "merged.gguf"
    assert registration.ok and registration.merged_gguf == merged and merged.stat().st_size > 0
    assert created == [
        {
            "model": "tiny-extractor:v1",
            "files": {"merged.gguf": sha256_digest(merged)},
            "stream": False,
            "template": "{{ .Prompt }}",
            "parameters": {"stop": ["<|im_end|>"]},
            "license": "Apache-2.0",
        }
    ]
    assert "tiny-extractor:v1" in tags and shown["license"] == "Apache-2.0"
    assert registration.modelfile.read_text().splitlines() == [
        f"FROM {merged}",
        'TEMPLATE """{{ .Prompt }}"""',
        'LICENSE """Apache-2.0"""',
        'PARAMETER stop "<|im_end|>"',
    ]
    assert registration.command == f"ollama create tiny-extractor:v1 -f {registration.modelfile}"
    assert any("llama-export-lora" in line for line in stages)


@pytest.mark.train
@pytest.mark.integration
def test_a_failed_registration_keeps_the_files_and_says_how_to_register_later(outcome) -> None:
    from benchsel.train.pipeline import _register
    from benchsel.train.register import BaseServing

    stages: list[str] = []
    with FakeOllama([]) as fake:
        fake.inject("status", path="/api/create", status=500)
        plan = _tiny_plan(outcome, "tiny-extractor:v2", fake.url)
        registration = _register(plan, outcome.base, None, outcome.adapter_gguf, BaseServing(), stages.append)
    assert not registration.ok and registration.error
    command = f"ollama create tiny-extractor:v2 -f {outcome.out_dir / 'Modelfile'}"
    assert registration.command == command
    assert stages[-1] == (
        f"Saved: {outcome.adapter_gguf}, {outcome.out_dir / 'merged.gguf'}, {outcome.out_dir / 'Modelfile'}. "
        f"Register it later with: {command}"
    )
