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
def outcome(tmp_path_factory: pytest.TempPathFactory):  # -> TrainOutcome
    pytest.importorskip("trl")
    from benchsel.train.lora import TrainSettings
    from benchsel.train.pipeline import TrainPlan, train
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
    return train(plan)


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
    assert before.models[0].name == after.models[0].name == str(out / "base-f32.gguf")
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
