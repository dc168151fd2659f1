"""OpenAIBackend: request bodies, reply parsing and fault mapping (httpx.MockTransport), then a real
llama-server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from benchsel.backends.base import Backend
from benchsel.backends.engine import LlamaServer
from benchsel.backends.openai import OpenAIBackend, chat_payload, parse_reply
from benchsel.errors import (
    BackendUnavailable,
    BadReply,
    CannotConnect,
    ConnectionFailed,
    ModelNotFound,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerFailed,
    TransportError,
    UsageError,
)
from benchsel.records import RequestOptions

MESSAGES = [{"role": "user", "content": "Say hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
LLAMA_BODY = {
    "choices": [{"message": {"role": "assistant", "content": '{"a": "b"}'}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5},
    "timings": {"prompt_n": 12, "prompt_ms": 40.5, "predicted_n": 5, "predicted_ms": 50.0},
}


def backend_with(handler: Callable[[httpx.Request], httpx.Response]) -> OpenAIBackend:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return OpenAIBackend("http://testserver/v1", client=client)


def answer(body: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


def raise_error(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def test_is_a_backend() -> None:
    assert isinstance(backend_with(answer(LLAMA_BODY)), Backend)


def test_payload_carries_options_and_the_prompt_cache_setting() -> None:
    options = RequestOptions(temperature=0.2, seed=7, num_predict=64)
    payload = chat_payload("m", MESSAGES, options, None)
    assert payload["temperature"] == 0.2
    assert payload["seed"] == 7
    assert payload["max_tokens"] == 64
    assert payload["cache_prompt"] is True
    assert "id_slot" not in payload
    assert "response_format" not in payload
    assert "chat_template_kwargs" not in payload
    off = chat_payload("m", MESSAGES, RequestOptions(prompt_cache=False, slot=2), None)
    assert off["cache_prompt"] is False and off["id_slot"] == 2


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("json", {"type": "json_object"}),
        ("schema", {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}),
    ],
)
def test_payload_response_format(fmt: Any, expected: dict[str, Any]) -> None:
    assert chat_payload("m", MESSAGES, RequestOptions(format=fmt), SCHEMA)["response_format"] == expected


def test_payload_schema_mode_needs_a_schema() -> None:
    with pytest.raises(UsageError, match="schema.json"):
        chat_payload("m", MESSAGES, RequestOptions(format="schema"), None)


def test_payload_think_off() -> None:
    payload = chat_payload("m", MESSAGES, RequestOptions(think="off"), None)
    assert payload["chat_template_kwargs"] == {"enable_thinking": False}


def test_reply_uses_llamacpp_timings() -> None:
    reply = parse_reply(LLAMA_BODY, wall_s=0.25)
    assert reply.timing_source == "server"
    assert (reply.prompt_eval_count, reply.eval_count) == (12, 5)
    assert reply.prompt_eval_duration_ns == 40_500_000
    assert reply.eval_duration_ns == 50_000_000
    assert reply.total_duration_ns == 250_000_000
    assert reply.done_reason == "stop"


def test_reply_without_timings_falls_back_to_usage_and_wall_clock() -> None:
    body = {k: v for k, v in LLAMA_BODY.items() if k != "timings"}
    reply = parse_reply(body, wall_s=0.5)
    assert reply.timing_source == "wall"
    assert (reply.prompt_eval_count, reply.eval_count) == (12, 5)
    assert reply.eval_duration_ns == 500_000_000


def test_reply_length_and_reasoning() -> None:
    body = {
        "choices": [
            {
                "message": {"content": None, "reasoning_content": "let me think"},
                "finish_reason": "length",
            }
        ]
    }
    reply = parse_reply(body, wall_s=0.1)
    assert reply.truncated
    assert reply.content == ""
    assert reply.thinking == "let me think"


def test_chat_posts_to_chat_completions() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=LLAMA_BODY)

    reply = backend_with(handler).chat("m", MESSAGES, RequestOptions(format="json"))
    assert reply.content == '{"a": "b"}'
    assert seen[0].url == "http://testserver/v1/chat/completions"
    assert json.loads(seen[0].content)["response_format"] == {"type": "json_object"}


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sekret")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=LLAMA_BODY)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    OpenAIBackend("http://testserver", api_key_env="MY_KEY", client=client).chat(
        "m", MESSAGES, RequestOptions()
    )
    assert seen[0].headers["authorization"] == "Bearer sekret"


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (raise_error(httpx.ConnectError("refused")), CannotConnect),
        (raise_error(httpx.RemoteProtocolError("reset")), ConnectionFailed),
        (raise_error(httpx.ReadError("reset by peer")), ConnectionFailed),
        (raise_error(httpx.ReadTimeout("slow")), RequestTimeout),
        (raise_error(httpx.ConnectTimeout("slow")), RequestTimeout),
        (answer({"error": {"message": "boom"}}, 500), ServerFailed),
        (answer({"error": "bad gateway"}, 502), ServerFailed),
        (answer({"error": {"message": "loading model"}}, 503), ServerBusy),
        (answer({"error": "slow down"}, 429), ServerBusy),
        (lambda request: httpx.Response(200, text="<html>not json</html>"), BadReply),
        (answer({"object": "chat.completion", "choices": []}), BadReply),
    ],
)
def test_transport_faults_are_retryable(
    handler: Callable[[httpx.Request], httpx.Response], error: type[TransportError]
) -> None:
    with pytest.raises(TransportError) as caught:
        backend_with(handler).chat("m", MESSAGES, RequestOptions())
    assert type(caught.value) is error
    assert caught.value.retryable


def test_a_bug_in_the_backend_is_not_a_transport_fault() -> None:
    """Only transport and HTTP faults are retried: anything else raises as itself."""
    with pytest.raises(ZeroDivisionError):
        backend_with(raise_error(ZeroDivisionError("a bug"))).chat("m", MESSAGES, RequestOptions())


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_rejections(status: int) -> None:
    handler = answer({"error": {"message": "model 'x' does not exist"}}, status)
    with pytest.raises(RequestRejected, match="does not exist") as caught:
        backend_with(handler).chat("m", MESSAGES, RequestOptions())
    assert caught.value.kind == f"http_{status}"


def test_describe_unreachable_server() -> None:
    with pytest.raises(BackendUnavailable, match="start the server or pass --base-url"):
        backend_with(raise_error(httpx.ConnectError("refused"))).describe("m")


def models_and_props(props: dict[str, Any] | None) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "qwen3:4b"}]})
        if request.url.path == "/props" and props is not None:
            return httpx.Response(200, json=props)
        return httpx.Response(404, json={"error": "not found"})

    return handler


def test_describe_unknown_model_lists_the_served_ones() -> None:
    with pytest.raises(ModelNotFound, match="qwen3:4b"):
        backend_with(models_and_props(None)).describe("gemma3:4b")


def test_describe_listed_model() -> None:
    snapshot = backend_with(models_and_props(None)).describe("qwen3:4b")
    assert snapshot.name == "qwen3:4b"
    assert snapshot.backend == "openai"
    assert snapshot.digest


def test_describe_llamacpp_accepts_any_name_and_reads_props() -> None:
    props = {
        "default_generation_settings": {"n_ctx": 2048},
        "model_path": "/nowhere/x.gguf",
        "build_info": "b1",
    }
    snapshot = backend_with(models_and_props(props)).describe("anything")
    assert snapshot.context_length == 2048
    assert snapshot.server_version == "llama.cpp b1"


def test_load_sends_a_one_token_request() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=LLAMA_BODY)

    assert backend_with(handler).load("m", RequestOptions()) >= 0.0
    assert seen[0]["max_tokens"] == 1


@pytest.mark.integration
def test_describe_real_llama_server(smollm2_server: LlamaServer) -> None:
    backend = OpenAIBackend(smollm2_server.base_url)
    try:
        snapshot = backend.describe("whatever-name")
    finally:
        backend.close()
    assert snapshot.family == "llama"
    assert snapshot.parameter_count == 134_515_008
    assert snapshot.quantization == "Q4_1"
    assert snapshot.server_version and snapshot.server_version.startswith("llama.cpp")


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["none", "json", "schema"])
def test_chat_real_llama_server(smollm2_server: LlamaServer, fmt: Any) -> None:
    backend = OpenAIBackend(smollm2_server.base_url)
    options = RequestOptions(format=fmt, num_predict=16, prompt_cache=False)  # every call prefills whole
    messages = [{"role": "user", "content": 'Answer with JSON like {"a": "word"}. Name a colour.'}]
    try:
        reply = backend.chat("smollm2", messages, options, SCHEMA)
    finally:
        backend.close()
    assert reply.timing_source == "server"
    assert 0 < reply.eval_count <= 16
    assert reply.prompt_eval_count > 10
    assert reply.eval_duration_ns > 0 and reply.prompt_eval_duration_ns > 0
    assert reply.done_reason in ("stop", "length")
    if fmt != "none" and reply.done_reason == "stop":
        assert isinstance(json.loads(reply.content), dict)
