"""Any OpenAI-compatible chat server: llama-server, vLLM, LM Studio, Ollama's /v1."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from benchsel.backends.ggufmeta import snapshot_from_gguf
from benchsel.errors import BackendUnavailable, ModelNotFound, RequestRejected, TransportError, UsageError
from benchsel.records import Memory, ModelSnapshot, Reply, RequestOptions

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
    """A Reply from a /v1/chat/completions body; llama.cpp's ``timings`` win over usage + wall clock."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        content = message.get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        what = f"the server's reply has no choices[0].message: {body!r:.200}"
        raise TransportError("malformed", what) from exc
    thinking = message.get("reasoning_content") or message.get("reasoning") or ""
    finish = choice.get("finish_reason")
    done_reason = _FINISH_REASONS.get(finish, finish) if isinstance(finish, str) else None
    wall_ns = int(wall_s * 1e9)
    timings = body.get("timings")
    if isinstance(timings, dict) and "predicted_n" in timings:
        return Reply(
            content=content,
            thinking=thinking,
            done_reason=done_reason,
            prompt_eval_count=int(timings.get("prompt_n", 0)),
            prompt_eval_duration_ns=int(float(timings.get("prompt_ms", 0.0)) * 1e6),
            eval_count=int(timings.get("predicted_n", 0)),
            eval_duration_ns=int(float(timings.get("predicted_ms", 0.0)) * 1e6),
            total_duration_ns=wall_ns,
            wall_s=wall_s,
            timing_source="server",
        )
    usage = body.get("usage") or {}
    return Reply(
        content=content,
        thinking=thinking,
        done_reason=done_reason,
        prompt_eval_count=int(usage.get("prompt_tokens") or 0),
        eval_count=int(usage.get("completion_tokens") or 0),
        eval_duration_ns=wall_ns,
        total_duration_ns=wall_ns,
        wall_s=wall_s,
        timing_source="wall",
    )


class OpenAIBackend:
    """Talks to an OpenAI-compatible server at ``base_url`` (with or without a trailing /v1)."""

    name = "openai"

    def __init__(
        self, base_url: str, api_key_env: str = "OPENAI_API_KEY", client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        headers = {}
        api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._headers = headers
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
        response = self._request("POST", "/v1/chat/completions", json=payload, timeout=options.timeout_s)
        wall_s = time.perf_counter() - started
        return parse_reply(_json(response), wall_s)

    def memory(self, model: str) -> Memory | None:
        return None

    def unload(self, model: str) -> None:
        return None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def slots_for(self, model: str) -> int | None:
        """llama.cpp's slot count (requests can be pinned to one), or None for other servers."""
        props = self.props()
        slots = props.get("total_slots") if props and "default_generation_settings" in props else None
        return slots if isinstance(slots, int) and slots > 0 else None

    def props(self) -> dict[str, Any] | None:
        """llama.cpp's /props (context size, model path, build), or None for servers without it."""
        if self._props is None:
            try:
                response = self._request("GET", "/props", timeout=10.0)
                body = _json(response)
            except (RequestRejected, TransportError):
                return None
            self._props = body if isinstance(body, dict) else {}
        return self._props or None

    def _model_ids(self) -> list[str]:
        try:
            response = self._request("GET", "/v1/models", timeout=10.0)
        except TransportError as exc:
            if exc.kind in ("connection", "timeout"):
                raise BackendUnavailable(
                    f"no OpenAI-compatible server answers at {self.base_url} ({exc}) - "
                    "start the server or pass --base-url"
                ) from exc
            raise
        except RequestRejected:
            return []
        body = _json(response)
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

    def _request(self, method: str, path: str, *, timeout: float, json: Any = None) -> httpx.Response:
        url = self.base_url + path
        try:
            response = self._client.request(method, url, json=json, headers=self._headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise TransportError("timeout", f"{method} {url} timed out after {timeout:g} s") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise TransportError("connection", f"{method} {url} failed: {exc or type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransportError("transport", f"{method} {url} failed: {exc or type(exc).__name__}") from exc
        _raise_for_status(response, f"{method} {url}")
        return response


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_text(response)
    if status >= 500 or status == 429:
        kind = {429: "rate_limited", 502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout"}
        raise TransportError(kind.get(status, "server_error"), f"{what} -> HTTP {status}: {detail}")
    raise RequestRejected(f"http_{status}", f"{what} -> HTTP {status}: {detail}")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error or body)[:300]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError) as exc:
        what = f"the server sent a body that is not JSON: {response.text[:200]!r}"
        raise TransportError("malformed", what) from exc


def _build(props: dict[str, Any]) -> str | None:
    build = props.get("build_info")
    return f"llama.cpp {build}" if build else None
