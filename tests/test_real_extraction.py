"""Real extraction output: Qwen2.5-Coder-0.5B-Instruct answers bundled cases through benchsel's own run path
on the embedded engine and through the Ollama loopback. The assertions are on real JSON.

On the bundled prompt ("no code fences", one worked example) the 0.5B answers bare JSON. Asked for a
```json block instead, it wraps the same JSON in a fence: right content in the wrong wrapper, the format
debt benchsel exists to see, which the content view must recover and the as-is view must not count.
Few cases and a modest token limit keep each test to seconds of generation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ollama_loopback import FakeOllama, demo_fake_model

from benchsel import api
from benchsel.backends.engine import LlamaServer
from benchsel.evalset import resolve_evalset
from benchsel.summary import ModelSummary

pytestmark = pytest.mark.integration

QWEN = "qwen2.5-coder:0.5b"
CASES = 2  # v1-001 (the DESIGN.md sentence) and v1-002 (one relationship)
NUM_PREDICT = 256  # the longest of these answers is well under it


@pytest.fixture(scope="module")
def fenced_evalset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """extraction-v1 with a prompt that asks for the answer in a ```json block, its worked example too."""
    folder = tmp_path_factory.mktemp("fenced") / "extraction-v1-fenced"
    shutil.copytree(resolve_evalset("extraction-v1"), folder)
    prompt = folder / "prompt.md"
    text = prompt.read_text()
    bare = "Reply with one JSON object and nothing else: no prose, no code fences."
    assert bare in text and "\nAnswer: {" in text and "\nJSON:" in text
    text = text.replace(bare, "Reply with one JSON object in a ```json code block.").replace("\nJSON:", "")
    head, answer = text.split("\nAnswer: ")
    example, rest = answer.split("\n", 1)
    prompt.write_text(f"{head}\nAnswer:\n```json\n{example}\n```\n{rest}")
    return folder


def run_qwen(db_dir: Path, **options: Any) -> ModelSummary:
    """Qwen 0.5B's summary of a run through benchsel's own path (``options`` as benchsel.run takes them)."""
    (model,) = api.run(QWEN, num_predict=NUM_PREDICT, db=db_dir / "runs.sqlite", **options).models
    return model


def contents(model: ModelSummary) -> list[str]:
    return [r.reply.content for r in model.results if r.reply is not None]


def test_qwen_05b_is_right_in_content_but_fenced_as_is(
    qwen05_path: Path, fenced_evalset: Path, tmp_path: Path
) -> None:
    model = run_qwen(tmp_path, evalset=fenced_evalset, backend="llamacpp", limit=CASES)
    score = model.score
    assert score.replies == CASES and score.errors == 0
    assert model.snapshot.family == "qwen2" and model.snapshot.quantization == "Q4_K_M"
    # what it understood: most gold entities found in the recovered JSON
    assert score.content.entities.recall.value >= 0.6
    fenced = [reply for reply in score.per_reply if reply.recovery == "fence"]
    assert fenced, f"expected ```json-fenced answers, got {contents(model)}"
    for reply in fenced:
        # recovered for the content view, not valid JSON as it stands
        assert reply.recovered and not reply.strict_json
        assert reply.content.entities.counts.tp > 0 and reply.as_is.entities.counts.tp == 0
    assert score.valid_json.value < 1.0
    assert score.content.entities.f1.value > score.as_is.entities.f1.value  # the format debt


def test_qwen_05b_with_format_json_answers_strict_json(
    qwen05_path: Path, fenced_evalset: Path, tmp_path: Path
) -> None:
    """The grammar of --format json keeps the answer bare even when the prompt asks for a fence."""
    model = run_qwen(tmp_path, evalset=fenced_evalset, backend="llamacpp", format="json", limit=CASES)
    score = model.score
    assert score.errors == 0 and score.valid_json.value == 1.0
    for content in contents(model):
        answer = json.loads(content)  # strict: the whole reply parses, no fence
        assert isinstance(answer, dict) and isinstance(answer.get("entities"), list)
    assert score.as_is.entities.recall.value >= 0.6


@pytest.fixture(scope="module")
def qwen_ollama(qwen05_server: LlamaServer) -> Iterator[FakeOllama]:
    with FakeOllama([demo_fake_model(QWEN, qwen05_server)]) as fake:
        yield fake


def test_ollama_backend_with_qwen_05b_gets_real_content(qwen_ollama: FakeOllama, tmp_path: Path) -> None:
    model = run_qwen(tmp_path, backend="ollama", host=qwen_ollama.url, limit=2)
    assert model.backend == "ollama" and model.snapshot.family == "qwen2"
    assert model.score.errors == 0
    assert model.score.content.entities.recall.value >= 0.6
    sent = [body for path, body in qwen_ollama.requests if path == "/api/chat" and body.get("messages")]
    # the cases; the others prime the prompt cache with the eval set's prompt (one token each)
    cases = [body for body in sent if body["options"]["num_predict"] != 1]
    assert len(cases) == 2 and all(body["options"]["num_predict"] == NUM_PREDICT for body in cases)
    assert all("Docker" in text or "Nginx" in text for text in contents(model)[:2])
