"""The loopback fake Ollama speaks Ollama's wire format (ollama-api.md) over a real llama-server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ollama_loopback import FakeModel, FakeOllama

from benchsel.backends.engine import LlamaServer

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
THINKER = "thinker:135m"
STUBBORN = "stubborn:135m"
REASONING = "The user wants entities and relationships. I will answer with one JSON object."
MESSAGES = [{"role": "user", "content": "Name one colour. Answer with one word."}]
OPTIONS = {"temperature": 0, "seed": 1, "num_ctx": 4096, "num_predict": 8}


@pytest.fixture(scope="module")
def fake(smollm2_path: Path, smollm2_server: LlamaServer) -> Iterator[FakeOllama]:
    models = [
        FakeModel(MODEL, smollm2_path, smollm2_server),
        FakeModel(THINKER, smollm2_path, smollm2_server, thinking_text=REASONING),
        FakeModel(STUBBORN, smollm2_path, smollm2_server, thinking_text=REASONING, honours_think_off=False),
    ]
    with FakeOllama(models, unload_delay_s=0.1) as server:
        yield server


@pytest.fixture
def http(fake: FakeOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=60) as client:
        yield client


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_root_and_version(http: httpx.Client) -> None:
    assert http.get("/").text == "Ollama is running"
    assert http.get("/api/version").json()["version"].count(".") == 2


def test_tags_list_the_models_with_size_digest_and_details(http: httpx.Client, smollm2_path: Path) -> None:
    models = {m["name"]: m for m in http.get("/api/tags").json()["models"]}
    assert set(models) == {MODEL, THINKER, STUBBORN}
    entry = models[MODEL]
    assert entry["size"] == smollm2_path.stat().st_size
    assert len(entry["digest"]) == 64
    assert entry["details"]["family"] == "llama"
    assert entry["details"]["quantization_level"] == "Q4_1"


def test_show_gives_model_info_and_capabilities(http: httpx.Client) -> None:
    shown = http.post("/api/show", json={"model": MODEL, "verbose": True}).json()
    assert shown["capabilities"] == ["completion"]
    info = shown["model_info"]
    assert info["general.architecture"] == "llama"
    assert info["llama.block_count"] == 30
    assert info["llama.attention.head_count_kv"] == 3
    assert info["general.parameter_count"] > 100_000_000
    assert "{%" in shown["template"]
    thinker = http.post("/api/show", json={"model": THINKER}).json()
    assert thinker["capabilities"] == ["completion", "thinking"]


def test_unknown_model_is_404_with_ollamas_message(http: httpx.Client) -> None:
    for path in ("/api/show", "/api/chat"):
        response = http.post(path, json={"model": "nope:1b", "messages": MESSAGES})
        assert response.status_code == 404
        assert response.json() == {"error": "model 'nope:1b' not found"}


def test_chat_without_stream_carries_nanosecond_metrics(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "stream": False, "options": OPTIONS}
    started = time.perf_counter_ns()
    reply = http.post("/api/chat", json=body).json()
    wall_ns = time.perf_counter_ns() - started
    assert reply["done"] is True
    assert reply["done_reason"] in ("stop", "length")
    assert reply["message"]["content"]
    assert 0 < reply["eval_count"] <= OPTIONS["num_predict"]
    assert 0 < reply["eval_duration"] < reply["total_duration"] <= wall_ns + reply.get("load_duration", 0)
    assert reply["prompt_eval_count"] > 0


def test_streamed_chat_passes_tokens_through_and_ends_with_done(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "options": OPTIONS}
    lines = ndjson(http.post("/api/chat", json=body))
    assert len(lines) >= 2
    assert all(line["done"] is False for line in lines[:-1])
    last = lines[-1]
    assert last["done"] is True and last["eval_count"] > 0 and last["eval_duration"] > 0
    assert "".join(line["message"]["content"] for line in lines)


def test_json_and_schema_formats_constrain_the_output(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "maxLength": 12}},
        "required": ["colour"],
    }
    options = {**OPTIONS, "num_predict": 32}
    for fmt in ("json", schema):
        body = {"model": MODEL, "messages": MESSAGES, "stream": False, "options": options, "format": fmt}
        reply = http.post("/api/chat", json=body).json()
        if reply["done_reason"] == "stop":
            parsed = json.loads(reply["message"]["content"])
            assert isinstance(parsed, dict)
            if fmt is schema:
                assert set(parsed) == {"colour"}
        else:
            assert reply["message"]["content"].lstrip().startswith("{")


def test_think_true_on_a_model_without_thinking_is_400(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "think": True, "options": OPTIONS}
    response = http.post("/api/chat", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f'"{MODEL}" does not support thinking'}
    accepted = http.post("/api/chat", json={**body, "think": False, "stream": False})
    assert accepted.status_code == 200


def test_thinking_double_returns_its_reasoning_unless_think_is_false(http: httpx.Client) -> None:
    body = {"model": THINKER, "messages": MESSAGES, "stream": False, "options": OPTIONS}
    thought = http.post("/api/chat", json=body).json()
    assert thought["message"]["thinking"] == REASONING
    plain = http.post("/api/chat", json={**body, "think": False}).json()
    assert "thinking" not in plain["message"]
    assert thought["eval_count"] > plain["eval_count"]
    streamed = ndjson(http.post("/api/chat", json={**body, "stream": True, "think": True}))
    assert "".join(line["message"].get("thinking", "") for line in streamed) == REASONING
    stubborn = http.post("/api/chat", json={**body, "model": STUBBORN, "think": False}).json()
    assert stubborn["message"]["thinking"] == REASONING, "a model that ignores think: false"


def test_load_unload_and_ps(http: httpx.Client, fake: FakeOllama) -> None:
    load = {"model": MODEL, "messages": [], "stream": False, "options": OPTIONS, "keep_alive": 0}
    http.post("/api/chat", json=load)
    deadline = time.monotonic() + 5
    while MODEL in fake.loaded_models() and time.monotonic() < deadline:
        time.sleep(0.05)
    loaded = http.post("/api/chat", json={**load, "keep_alive": "5m"}).json()
    assert loaded["done_reason"] == "load" and loaded["load_duration"] > 0
    again = http.post("/api/chat", json={**load, "keep_alive": "5m"}).json()
    assert "load_duration" not in again, "zero-valued metrics are omitted"
    (entry,) = [m for m in http.get("/api/ps").json()["models"] if m["name"] == MODEL]
    assert entry["size"] > 0 and entry["size_vram"] >= 0 and entry["context_length"] == OPTIONS["num_ctx"]
    unloaded = http.post("/api/chat", json=load).json()
    assert unloaded["done_reason"] == "unload"
    deadline = time.monotonic() + 5
    while MODEL in fake.loaded_models() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(m["name"] != MODEL for m in http.get("/api/ps").json()["models"])


def test_changing_num_ctx_counts_a_reload(http: httpx.Client, fake: FakeOllama) -> None:
    load = {"model": THINKER, "messages": [], "stream": False, "options": OPTIONS}
    http.post("/api/chat", json=load)
    before = fake.reloads[THINKER]
    http.post("/api/chat", json=load)
    assert fake.reloads[THINKER] == before
    reloaded = http.post("/api/chat", json={**load, "options": {**OPTIONS, "num_ctx": 2048}}).json()
    assert fake.reloads[THINKER] == before + 1 and reloaded["load_duration"] > 0


def test_pull_streams_progress_or_a_failure(http: httpx.Client) -> None:
    lines = ndjson(http.post("/api/pull", json={"model": MODEL}))
    assert lines[-1] == {"status": "success"}
    progress = [line for line in lines if "total" in line]
    assert progress[-1]["completed"] == progress[-1]["total"] > 0
    failed = ndjson(http.post("/api/pull", json={"model": "nope:1b"}))
    assert failed[-1] == {"error": "pull model manifest: file does not exist"}


def test_injected_status_and_stream_faults(http: httpx.Client, fake: FakeOllama) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "options": OPTIONS}
    fake.inject("status", 2, status=503)
    assert [http.post("/api/chat", json=body).status_code for _ in range(3)] == [503, 503, 200]
    fake.inject("no_done")
    assert all(not line["done"] for line in ndjson(http.post("/api/chat", json=body)))
    fake.inject("error_line")
    assert "error" in ndjson(http.post("/api/chat", json=body))[-1]
    fake.inject("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/api/chat", json=body)
    fake.inject("delay", delay_s=1.5)
    with pytest.raises(httpx.ReadTimeout):
        http.post("/api/chat", json=body, timeout=httpx.Timeout(5, read=0.5))
