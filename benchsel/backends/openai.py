"""Any OpenAI-compatible chat server: llama-server, vLLM, LM Studio, Ollama's /v1."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from benchsel.backends.ggufmeta import snapshot_from_gguf
from benchsel.backends.http import Answer, Channel, check_url, raise_for_status
from benchsel.errors import (
    BackendUnavailable,
    BadReply,
    ConnectionFailed,
    ModelNotFound,
    RequestRejected,
    RequestTimeout,
    TransportError,
    UsageError,
)
from benchsel.records import Memory, ModelSnapshot, Reply, RequestOptions, reply_count, reply_text

__all__ = ["OpenAIBackend", "chat_payload", "parse_reply"]

_FINISH_REASONS = {"length": "length", "stop": "stop", "eos": "stop", "max_tokens": "length"}


def chat_payload(
    model: str, messages: list[dict[str, str]], options: RequestOptions, schema: dict[str, Any] | None
) -> dict[str, Any]:
    """The /v1/chat/completions body for one request."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": options.temperature,
        "seed": options.seed,
        "max_tokens": options.num_predict,
        "stream": False,
        "cache_prompt": options.prompt_cache,  # llama.cpp; other servers ignore it
    }
    if options.slot is not None:
        payload["id_slot"] = options.slot  # llama.cpp: the slot whose cached prefix this request reuses
    if options.format == "json":
        payload["response_format"] = {"type": "json_object"}
    elif options.format == "schema":
        if schema is None:
            raise UsageError("format 'schema' needs a JSON Schema - give the eval set a schema.json")
        json_schema = {"name": "answer", "schema": schema}
        payload["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    if options.think != "auto":
        payload["chat_template_kwargs"] = {"enable_thinking": options.think == "on"}
    return payload


def parse_reply(body: Any, wall_s: float) -> Reply:
    """A Reply from a /v1/chat/completions body; llama.cpp's ``timings`` win over usage + wall clock.
    Whatever ``content`` holds (text, an object, a number) is kept as the model's output."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        content = reply_text(message.get("content"))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BadReply(f"the server's reply has no choices[0].message: {body!r:.200}") from exc
    thinking = reply_text(message.get("reasoning_content") or message.get("reasoning"))
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    done_reason = _FINISH_REASONS.get(finish, finish) if isinstance(finish, str) else None
    wall_ns = int(wall_s * 1e9)
    timings = body.get("timings") if isinstance(body, dict) else None
    if isinstance(timings, dict) and "predicted_n" in timings:
        return Reply(
            content=content,
            thinking=thinking,
            done_reason=done_reason,
            prompt_eval_count=reply_count(timings.get("prompt_n")),
            prompt_eval_duration_ns=int(_ms(timings.get("prompt_ms")) * 1e6),
            eval_count=reply_count(timings.get("predicted_n")),
            eval_duration_ns=int(_ms(timings.get("predicted_ms")) * 1e6),
            total_duration_ns=wall_ns,
            wall_s=wall_s,
            timing_source="server",
        )
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return Reply(
        content=content,
        thinking=thinking,
        done_reason=done_reason,
        prompt_eval_count=reply_count(usage.get("prompt_tokens")),
        eval_count=reply_count(usage.get("completion_tokens")),
        eval_duration_ns=wall_ns,
        total_duration_ns=wall_ns,
        wall_s=wall_s,
        timing_source="wall",
    )


def _ms(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if 0 <= number < float("inf") else 0.0


class OpenAIBackend:
    """Talks to an OpenAI-compatible server at ``base_url`` (with or without a trailing /v1)."""

    name = "openai"

    def __init__(
        self, base_url: str, api_key_env: str = "OPENAI_API_KEY", client: httpx.Client | None = None
    ) -> None:
        check_url(base_url, "--base-url", "give the server's address, e.g. http://127.0.0.1:8080/v1")
        self.base_url = base_url.strip().rstrip("/").removesuffix("/v1")
        headers = {}
        api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._channel = Channel(client, headers)
        self._props: dict[str, Any] | None = None

    def describe(self, model: str) -> ModelSnapshot:
        listed = self._model_ids()
        props = self.props()
        is_llamacpp = props is not None and "default_generation_settings" in props
        if listed and model not in listed and not is_llamacpp:
            raise ModelNotFound(
                f"model '{model}' is not served at {self.base_url} - use one of: {', '.join(listed)}"
            )
        return self._snapshot(model, props if is_llamacpp else None)

    def load(self, model: str, options: RequestOptions) -> float:
        """No explicit load exists in this API: a one-token request loads the model; returns its wall time."""
        started = time.perf_counter()
        warm = RequestOptions(temperature=0.0, seed=options.seed, num_predict=1, timeout_s=options.timeout_s)
        self.chat(model, [{"role": "user", "content": "Hi"}], warm)
        return time.perf_counter() - started

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        options: RequestOptions,
        schema: dict[str, Any] | None = None,
    ) -> Reply:
        payload = chat_payload(model, messages, options, schema)
        started = time.perf_counter()
        answer = self._request("POST", "/v1/chat/completions", json=payload, timeout=options.timeout_s)
        wall_s = time.perf_counter() - started
        return parse_reply(answer.json(), wall_s)

    def memory(self, model: str) -> Memory | None:
        return None

    def unload(self, model: str) -> None:
        return None

    def abort(self) -> None:
        self._channel.abort()

    def close(self) -> None:
        self._channel.close()

    def slots_for(self, model: str) -> int | None:
        """llama.cpp's slot count (requests can be pinned to one), or None for other servers."""
        props = self.props()
        slots = props.get("total_slots") if props and "default_generation_settings" in props else None
        return slots if isinstance(slots, int) and slots > 0 else None

    def props(self) -> dict[str, Any] | None:
        """llama.cpp's /props (context size, model path, build), or None for servers without it."""
        if self._props is None:
            try:
                body = self._request("GET", "/props", timeout=10.0).json()
            except (RequestRejected, TransportError):
                return None
            self._props = body if isinstance(body, dict) else {}
        return self._props or None

    def _model_ids(self) -> list[str]:
        try:
            body = self._request("GET", "/v1/models", timeout=10.0).json()
        except (ConnectionFailed, RequestTimeout) as exc:
            raise BackendUnavailable(
                f"no OpenAI-compatible server answers at {self.base_url} ({exc}) - "
                "start the server or pass --base-url"
            ) from exc
        except RequestRejected:
            return []
        data = body.get("data") if isinstance(body, dict) else None
        return [str(item["id"]) for item in data or [] if isinstance(item, dict) and "id" in item]

    def _snapshot(self, model: str, props: dict[str, Any] | None) -> ModelSnapshot:
        settings = (props or {}).get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx")
        path = Path(str((props or {}).get("model_path") or ""))
        if props and path.suffix == ".gguf" and path.is_file():
            snapshot = snapshot_from_gguf(model, path, backend=self.name)
            return replace(snapshot, server_version=_build(props))
        return ModelSnapshot(
            name=model,
            backend=self.name,
            digest=f"openai:{self.base_url}/{model}",
            context_length=int(n_ctx) if isinstance(n_ctx, int) else None,
            server_version=_build(props) if props else None,
        )

    def _request(self, method: str, path: str, *, timeout: float, json: Any = None) -> Answer:
        answer = self._channel.request(method, self.base_url + path, timeout_s=timeout, json=json)
        raise_for_status(answer.status, answer.error_detail(), answer.what)
        return answer


def _build(props: dict[str, Any]) -> str | None:
    build = props.get("build_info")
    return f"llama.cpp {build}" if build else None
