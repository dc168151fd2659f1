"""OllamaBackend end to end against the loopback fake Ollama (real llama-server underneath), its error
mapping, host resolution, make_backend, and (opt-in) the same calls against a real Ollama."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from ollama_loopback import FakeModel, FakeOllama

from benchsel.backends.base import Backend
from benchsel.backends.engine import LlamaServer
from benchsel.backends.factory import make_backend
from benchsel.backends.llamacpp import LlamaCppBackend
from benchsel.backends.ollama import OllamaBackend, PullProgress, resolve_host, translate_error
from benchsel.errors import (
    BackendUnavailable,
    CapabilityError,
    ModelNotFound,
    RequestRejected,
    TransportError,
    UsageError,
)
from benchsel.records import RequestOptions

MODEL = "smollm2:135m"
THINKER = "thinker:135m"
VISION = "vision:135m"
REASONING = "The text names one colour; the answer is a JSON object with that colour."
MESSAGES = [{"role": "user", "content": 'Return JSON like {"colour": "red"} for: the sky is blue.'}]
SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "maxLength": 12}},
    "required": ["colour"],
    "additionalProperties": False,
}
OPTIONS = RequestOptions(num_ctx=4096, num_predict=12, timeout_s=120)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- units: host resolution and error mapping ---------------------------------------------------


def test_resolve_host_follows_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host() == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    assert resolve_host() == "http://gpu-box:11434"
    assert resolve_host("10.0.0.2:8080") == "http://10.0.0.2:8080"
    assert resolve_host("https://ollama.example/") == "https://ollama.example:443"


@pytest.mark.parametrize(
    ("exc", "expected", "kind"),
    [
        (ollama.ResponseError('{"error": "model \'m:1b\' not found"}', 404), ModelNotFound, None),
        (ollama.ResponseError('"m:1b" does not support thinking', 400), CapabilityError, None),
        (ollama.ResponseError("server busy", 503), TransportError, "busy"),
        (ollama.ResponseError("runner terminated", 500), TransportError, "server_error"),
        (ollama.ResponseError("runner crashed"), TransportError, "server_error"),
        (ollama.ResponseError("invalid options", 400), RequestRejected, "http_400"),
        (ConnectionError("refused"), BackendUnavailable, None),
        (httpx.ReadTimeout("slow"), TransportError, "timeout"),
        (httpx.RemoteProtocolError("peer closed"), TransportError, "connection"),
    ],
)
def test_translate_error(exc: Exception, expected: type[Exception], kind: str | None) -> None:
    error = translate_error(exc, model="m:1b", host="http://h:11434")
    assert isinstance(error, expected)
    if kind is not None:
        assert getattr(error, "kind", None) == kind
    if isinstance(error, TransportError):
        assert error.retryable


def test_unreachable_host_is_backend_unavailable() -> None:
    url = closed_port_url()
    backend = OllamaBackend(url)
    with pytest.raises(BackendUnavailable, match="ollama serve") as caught:
        backend.describe(MODEL)
    assert url in str(caught.value)
    with pytest.raises(BackendUnavailable):
        backend.chat(MODEL, MESSAGES, OPTIONS)
    backend.close()


def test_schema_format_without_a_schema_is_a_usage_error() -> None:
    backend = OllamaBackend(closed_port_url())
    with pytest.raises(UsageError, match="schema"):
        backend.chat(MODEL, MESSAGES, RequestOptions(format="schema"))
    backend.close()


def test_make_backend_auto_picks_ollama_when_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOllama([]) as fake:
        monkeypatch.setenv("OLLAMA_HOST", fake.url)
        backend = make_backend("auto")
        assert isinstance(backend, OllamaBackend) and backend.host == fake.url
        assert isinstance(backend, Backend)
        backend.close()
    monkeypatch.setenv("OLLAMA_HOST", closed_port_url())
    assert isinstance(make_backend("auto"), LlamaCppBackend)
    with pytest.raises(UsageError, match="unknown backend"):
        make_backend("vllm")


# --- end to end against the loopback ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake(smollm2_path: Path, smollm2_server: LlamaServer) -> Iterator[FakeOllama]:
    models = [
        FakeModel(MODEL, smollm2_path, smollm2_server),
        FakeModel(THINKER, smollm2_path, smollm2_server, thinking_text=REASONING),
        FakeModel(VISION, smollm2_path, smollm2_server, projector_info={"clip.has_vision_encoder": True}),
    ]
    with FakeOllama(models, unload_delay_s=0.2) as server:
        yield server


def sent_chats(fake: FakeOllama, model: str) -> list[dict[str, object]]:
    return [body for path, body in fake.requests if path == "/api/chat" and body.get("model") == model]


@pytest.mark.integration
def test_describe(backend: OllamaBackend, smollm2_path: Path) -> None:
    snapshot = backend.describe(MODEL)
    assert snapshot.backend == "ollama" and snapshot.name == MODEL
    assert len(snapshot.digest) == 64
    assert snapshot.family == "llama" and snapshot.quantization == "Q4_1" and snapshot.file_type == 3
    assert snapshot.capabilities == ("completion",) and not snapshot.thinks
    assert snapshot.context_length == 8192
    assert snapshot.size_bytes == smollm2_path.stat().st_size
    assert snapshot.parameter_count and snapshot.parameter_count > 100_000_000
    assert snapshot.model_info["llama.attention.head_count"] == 9
    assert snapshot.server_version and not snapshot.has_projector
    assert backend.describe(THINKER).thinks
    vision = backend.describe(VISION)
    assert vision.has_projector and "vision" in vision.capabilities
    assert sorted(backend.list_models()) == [MODEL, THINKER, VISION]


@pytest.mark.integration
def test_unknown_model_names_the_fix(backend: OllamaBackend) -> None:
    with pytest.raises(ModelNotFound, match=r"ollama pull nope:1b.*--pull"):
        backend.describe("nope:1b")
    with pytest.raises(ModelNotFound, match="not pulled"):
        backend.chat("nope:1b", MESSAGES, OPTIONS)


@pytest.mark.integration
def test_load_chat_memory_unload(backend: OllamaBackend, fake: FakeOllama) -> None:
    backend.unload(MODEL)
    load_s = backend.load(MODEL, OPTIONS)
    assert load_s > 0
    reply = backend.chat(MODEL, MESSAGES, OPTIONS)
    assert reply.content and reply.done_reason in ("stop", "length")
    assert 0 < reply.eval_count <= OPTIONS.num_predict and reply.eval_duration_ns > 0
    assert reply.prompt_eval_count > 0 and reply.total_duration_ns >= reply.eval_duration_ns
    assert reply.wall_s > 0 and reply.timing_source == "server" and reply.load_duration_ns == 0
    memory = backend.memory(MODEL)
    assert memory is not None and memory.size_bytes > 0 and memory.source == "ollama /api/ps"
    assert fake.reloads[MODEL] == 0, "load() and chat() must send the same runner options"
    load_body, chat_body = sent_chats(fake, MODEL)[-2:]
    assert load_body["messages"] == [] and load_body["options"] == chat_body["options"]
    backend.unload(MODEL)
    assert backend.memory(MODEL) is None


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["none", "json", "schema"])
def test_chat_in_each_format_mode(backend: OllamaBackend, fake: FakeOllama, fmt: str) -> None:
    options = RequestOptions(num_ctx=4096, num_predict=32, format=fmt, timeout_s=120)  # type: ignore[arg-type]
    reply = backend.chat(MODEL, MESSAGES, options, schema=SCHEMA)
    sent = sent_chats(fake, MODEL)[-1]
    assert sent.get("format") == {"none": None, "json": "json", "schema": SCHEMA}[fmt]
    assert reply.content
    if fmt != "none" and reply.done_reason == "stop":
        parsed = json.loads(reply.content)
        assert isinstance(parsed, dict)
        if fmt == "schema":
            assert set(parsed) == {"colour"}


@pytest.mark.integration
def test_think_modes(backend: OllamaBackend, fake: FakeOllama) -> None:
    for think, sent in (("auto", None), ("off", False)):
        options = RequestOptions(num_ctx=4096, num_predict=6, think=think, timeout_s=120)  # type: ignore[arg-type]
        backend.chat(MODEL, MESSAGES, options)
        assert sent_chats(fake, MODEL)[-1].get("think") is sent
    with pytest.raises(CapabilityError, match="--think auto or --think off"):
        backend.chat(MODEL, MESSAGES, RequestOptions(num_ctx=4096, num_predict=6, think="on"))
    thought = backend.chat(THINKER, MESSAGES, RequestOptions(num_ctx=4096, num_predict=6, think="on"))
    assert thought.thinking == REASONING and thought.content
    auto = backend.chat(THINKER, MESSAGES, RequestOptions(num_ctx=4096, num_predict=6))
    assert auto.thinking == REASONING, "a thinking model thinks when think is omitted"
    off = backend.chat(THINKER, MESSAGES, RequestOptions(num_ctx=4096, num_predict=6, think="off"))
    assert off.thinking == "" and off.eval_count < thought.eval_count


@pytest.mark.integration
def test_pull_reports_progress(backend: OllamaBackend) -> None:
    seen: list[PullProgress] = []
    backend.pull(MODEL, progress=seen.append)
    assert seen[-1].status == "success"
    sized = [p for p in seen if p.total]
    assert sized and sized[-1].completed == sized[-1].total
    with pytest.raises(ModelNotFound, match="cannot be pulled"):
        backend.pull("nope:1b")


@pytest.mark.integration
@pytest.mark.parametrize(("status", "kind"), [(503, "busy"), (500, "server_error")])
def test_server_errors_are_retryable(
    backend: OllamaBackend, fake: FakeOllama, status: int, kind: str
) -> None:
    fake.inject("status", status=status)
    with pytest.raises(TransportError) as caught:
        backend.chat(MODEL, MESSAGES, OPTIONS)
    assert caught.value.kind == kind and caught.value.retryable


@pytest.mark.integration
def test_dropped_connection_and_timeout_are_retryable(backend: OllamaBackend, fake: FakeOllama) -> None:
    fake.inject("drop")
    with pytest.raises(TransportError) as dropped:
        backend.chat(MODEL, MESSAGES, OPTIONS)
    assert dropped.value.kind == "connection" and dropped.value.retryable
    fake.inject("drop", path="/api/show")
    with pytest.raises(TransportError, match="dropped"):
        backend.describe(MODEL)
    fake.inject("delay", delay_s=2.0)
    quick = RequestOptions(num_ctx=4096, num_predict=32, timeout_s=0.5)
    with pytest.raises(TransportError) as slow:
        backend.chat(MODEL, MESSAGES, quick)
    assert slow.value.kind == "timeout" and slow.value.retryable


@pytest.mark.integration
def test_stream_without_done_is_an_incomplete_reply(backend: OllamaBackend, fake: FakeOllama) -> None:
    fake.inject("no_done")
    reply = backend.chat(MODEL, MESSAGES, OPTIONS)
    assert reply.done_reason == "incomplete" and reply.truncated
    assert reply.content and reply.eval_count == 0 and reply.timing_source == "wall"


@pytest.mark.integration
def test_error_line_mid_stream_raises(backend: OllamaBackend, fake: FakeOllama) -> None:
    fake.inject("error_line")
    with pytest.raises(TransportError) as caught:
        backend.chat(MODEL, MESSAGES, OPTIONS)
    assert caught.value.kind == "server_error"


@pytest.mark.integration
def test_gemma_alias_describes_and_chats(gemma3_path: Path, gemma3_server: LlamaServer) -> None:
    with FakeOllama([FakeModel("gemma3:4b", gemma3_path, gemma3_server)]) as fake:
        backend = OllamaBackend(fake.url)
        snapshot = backend.describe("gemma3:4b")
        assert snapshot.family == "gemma3" and snapshot.quantization == "Q4_K_M"
        assert snapshot.model_info["gemma3.attention.sliding_window"] == 512
        reply = backend.chat("gemma3:4b", MESSAGES, RequestOptions(num_ctx=4096, num_predict=8))
        assert reply.eval_count > 0
        backend.close()


# --- a real Ollama (opt-in) ---------------------------------------------------------------------


@pytest.mark.ollama
def test_real_ollama_describe_and_chat(ollama_url: str) -> None:
    model = os.environ.get("BENCHSEL_TEST_OLLAMA_MODEL", MODEL)
    backend = OllamaBackend(ollama_url)
    if model not in backend.list_models():
        backend.pull(model)
    snapshot = backend.describe(model)
    assert snapshot.digest and snapshot.server_version and snapshot.model_info
    assert backend.load(model, OPTIONS) >= 0
    options = RequestOptions(
        num_ctx=4096, num_predict=64, format="schema", think="off" if snapshot.thinks else "auto"
    )
    reply = backend.chat(model, MESSAGES, options, schema=SCHEMA)
    assert reply.done_reason in ("stop", "length") and reply.eval_count > 0 and reply.eval_duration_ns > 0
    assert backend.memory(model) is not None
    backend.unload(model)
    assert backend.memory(model) is None
    backend.close()
