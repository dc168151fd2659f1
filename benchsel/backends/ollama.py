"""Ollama's native API through the official ``ollama`` client: describe, load, chat, memory, unload, pull."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ollama

from benchsel.errors import (
    BackendUnavailable,
    BenchselError,
    CapabilityError,
    ModelNotFound,
    RequestRejected,
    TransportError,
    UsageError,
)
from benchsel.records import Memory, ModelSnapshot, Reply, RequestOptions

__all__ = ["OllamaBackend", "PullProgress", "normalize_model_name", "resolve_host"]

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
CONNECT_TIMEOUT_S = 10.0
UNLOAD_WAIT_S = 15.0
UNLOAD_POLL_S = 0.05
MEMORY_SOURCE = "ollama /api/ps"
_SCHEME_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PullProgress:
    """One status line of ``/api/pull``; ``total``/``completed`` are bytes of the layer being pulled."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


def resolve_host(host: str | None = None) -> str:
    """The base URL for ``host`` or OLLAMA_HOST, as Ollama reads it: a bare host gets port 11434."""
    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip().rstrip("/")
    if not raw:
        return DEFAULT_HOST
    has_scheme = "://" in raw
    parts = urlsplit(raw if has_scheme else f"http://{raw}")
    scheme = parts.scheme or "http"
    hostname = parts.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    port = parts.port or (_SCHEME_PORTS.get(scheme, DEFAULT_PORT) if has_scheme else DEFAULT_PORT)
    return f"{scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


def normalize_model_name(model: str) -> str:
    """Ollama's full name for a tag: ``gemma3`` means ``gemma3:latest``."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


class OllamaBackend:
    """A running Ollama server. ``client`` (an ``ollama.Client``) and ``http`` (an ``httpx.Client`` for the
    two calls the client lacks: verbose ``/api/show`` and ``/api/version``) may be injected."""

    name = "ollama"
    # Ollama always reuses a cached prompt prefix: there is no switch to turn it off.
    prompt_cache_fixed = True

    def __init__(
        self,
        host: str | None = None,
        client: ollama.Client | None = None,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.host = resolve_host(host)
        self._injected = client
        self._clients: dict[float, ollama.Client] = {}
        self._lock = threading.Lock()
        self._http = http or httpx.Client(base_url=self.host, timeout=_timeout(60.0))
        self._owns_http = http is None

    # --- metadata -------------------------------------------------------------------------------

    def version(self) -> str:
        return str(self._get_json("GET", "/api/version", model=None).get("version", ""))

    def show(self, model: str) -> dict[str, Any]:
        """Verbose ``/api/show`` as Ollama returns it (template and parameters included)."""
        return self._get_json("POST", "/api/show", model=model, body={"model": model, "verbose": True})

    def list_models(self) -> list[str]:
        listing = self._call(lambda: self._client().list(), model=None)
        return [m.model for m in listing.models if m.model]

    def describe(self, model: str) -> ModelSnapshot:
        shown = self.show(model)
        tag = self._tag_entry(model)
        details = shown.get("details") or {}
        info = dict(shown.get("model_info") or {})
        arch = info.get("general.architecture")
        return ModelSnapshot(
            name=model,
            backend=self.name,
            digest=str(tag.get("digest") or ""),
            family=details.get("family"),
            parameter_size=details.get("parameter_size"),
            parameter_count=_as_int(info.get("general.parameter_count")),
            quantization=details.get("quantization_level"),
            file_type=_as_int(info.get("general.file_type")),
            capabilities=tuple(shown.get("capabilities") or ()),
            context_length=_as_int(info.get(f"{arch}.context_length")) if arch else None,
            size_bytes=_as_int(tag.get("size")),
            server_version=self.version(),
            model_info=info,
            has_projector=bool(shown.get("projector_info")),
        )

    def _tag_entry(self, model: str) -> dict[str, Any]:
        listing = self._call(lambda: self._client().list(), model=None)
        wanted = normalize_model_name(model)
        for entry in listing.models:
            if entry.model and normalize_model_name(entry.model) == wanted:
                return entry.model_dump()
        return {}

    # --- running --------------------------------------------------------------------------------

    def load(self, model: str, options: RequestOptions) -> float:
        """Load-only chat (``messages: []``) with the same options as the timed requests."""
        started = time.perf_counter()
        response = self._call(
            lambda: self._client(options.timeout_s).chat(model=model, messages=[], options=_options(options)),
            model=model,
        )
        wall_s = time.perf_counter() - started
        load_ns = response.load_duration or 0
        return load_ns / 1e9 if load_ns > 0 else wall_s

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        options: RequestOptions,
        schema: dict[str, Any] | None = None,
    ) -> Reply:
        request: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "options": _options(options),
            "format": _format(options, schema),
            "think": _think(options),
        }
        started = time.perf_counter()

        def send() -> Reply:
            parts = self._client(options.timeout_s).chat(stream=True, **request)
            return _collect(parts, started, options.timeout_s)

        return self._call(send, model=model)

    def memory(self, model: str) -> Memory | None:
        entry = self._ps_entry(model)
        if entry is None or entry.size is None:
            return None
        vram = int(entry.size_vram) if entry.size_vram is not None else None
        return Memory(size_bytes=int(entry.size), size_vram_bytes=vram, source=MEMORY_SOURCE)

    def unload(self, model: str) -> None:
        """``keep_alive: 0``, then wait (bounded) until ``/api/ps`` no longer lists the model."""
        self._call(lambda: self._client().chat(model=model, messages=[], keep_alive=0), model=model)
        self.wait_unloaded(model, UNLOAD_WAIT_S)

    def wait_unloaded(self, model: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._ps_entry(model) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(UNLOAD_POLL_S)
        return True

    def pull(self, model: str, progress: Callable[[PullProgress], None] | None = None) -> None:
        """Pull ``model``, calling ``progress`` with every status line (for a progress bar)."""
        try:
            for part in self._client().pull(model, stream=True):
                if progress is not None:
                    progress(PullProgress(part.status or "", part.digest, part.total, part.completed))
        except ollama.ResponseError as exc:
            if exc.status_code in (-1, 404, 500) and _looks_missing(exc.error):
                raise ModelNotFound(
                    f"model '{model}' cannot be pulled ({exc.error}) - check the name at "
                    "https://ollama.com/library"
                ) from None
            raise self._translate(exc, model) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one of benchsel's errors
            raise self._translate(exc, model) from None

    # --- registering a fine-tune ------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """``HEAD /api/blobs/<digest>``: whether the server already holds the file."""
        response = self._call(lambda: self._http.head(f"/api/blobs/{digest}"), model=None)
        return bool(response.status_code == 200)

    def upload_blob(self, path: Path, digest: str) -> None:
        """``POST /api/blobs/<digest>`` with the file's bytes, unless the server already has it."""
        if self.has_blob(digest):
            return

        def send() -> None:
            with Path(path).open("rb") as handle:
                response = self._http.post(f"/api/blobs/{digest}", content=handle, timeout=_timeout(600.0))
            if response.status_code >= 400:
                raise ollama.ResponseError(response.text, response.status_code)

        self._call(send, model=None)

    def create_with_adapter(
        self,
        name: str,
        base: str,
        adapter_path: Path,
        adapter_digest: str,
        template: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Upload a GGUF LoRA adapter and ``POST /api/create`` ``name`` = ``base`` + the adapter."""
        self.upload_blob(adapter_path, adapter_digest)
        body: dict[str, Any] = {
            "model": name,
            "from": base,
            "adapters": {Path(adapter_path).name: adapter_digest},
            "stream": False,
        }
        if template:
            body["template"] = template
        if parameters:
            body["parameters"] = parameters
        reply = self._get_json("POST", "/api/create", model=base, body=body)
        if reply.get("error"):
            raise RequestRejected("create", f"Ollama could not create '{name}': {reply['error']}")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._owns_http:
            self._http.close()

    # --- plumbing -------------------------------------------------------------------------------

    def _client(self, timeout_s: float = 60.0) -> ollama.Client:
        if self._injected is not None:
            return self._injected
        with self._lock:
            if timeout_s not in self._clients:
                self._clients[timeout_s] = ollama.Client(host=self.host, timeout=_timeout(timeout_s))
            return self._clients[timeout_s]

    def _ps_entry(self, model: str) -> Any:
        listing = self._call(lambda: self._client().ps(), model=None)
        wanted = normalize_model_name(model)
        for entry in listing.models:
            names = {entry.model, entry.name} - {None}
            if any(normalize_model_name(str(n)) == wanted for n in names):
                return entry
        return None

    def _get_json(self, method: str, path: str, *, model: str | None, body: Any = None) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            response = self._http.request(method, path, json=body)
            if response.status_code >= 400:
                raise ollama.ResponseError(response.text, response.status_code)
            data = response.json()
            return data if isinstance(data, dict) else {}

        return self._call(send, model=model)

    def _call(self, fn: Callable[[], Any], *, model: str | None) -> Any:
        try:
            return fn()
        except BenchselError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one of benchsel's errors
            raise self._translate(exc, model) from None

    def _translate(self, exc: Exception, model: str | None) -> BenchselError:
        return translate_error(exc, model=model, host=self.host)


def translate_error(exc: Exception, *, model: str | None, host: str) -> BenchselError:
    """One of benchsel's errors, with the fix in the message, for whatever the client or httpx raised."""
    if isinstance(exc, ollama.ResponseError):
        return _from_response(exc.error, exc.status_code, model)
    if isinstance(exc, ConnectionError | httpx.ConnectError):
        return BackendUnavailable(
            f"Ollama is not answering at {host}: start it with `ollama serve` or set OLLAMA_HOST"
        )
    if isinstance(exc, httpx.TimeoutException):
        return TransportError("timeout", f"Ollama at {host} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return TransportError("dropped", f"Ollama at {host} dropped the connection: {exc}")
    if isinstance(exc, httpx.TransportError):
        return TransportError("transport", f"request to Ollama at {host} failed: {exc}")
    if isinstance(exc, ValueError):  # a reply line that is not JSON, or fails the client's model
        return TransportError("bad_response", f"Ollama at {host} sent an unreadable reply: {exc}")
    return TransportError("unknown", f"request to Ollama at {host} failed: {type(exc).__name__}: {exc}")


def _from_response(error: str, status: int, model: str | None) -> BenchselError:
    text = str(error)
    if model is not None and (status == 404 or (status == -1 and _looks_missing(text))):
        return ModelNotFound(f"model '{model}' is not pulled - run `ollama pull {model}` or add --pull")
    if "does not support thinking" in text:
        return CapabilityError(
            f"model '{model}' does not support thinking ({text}) - run it with --think auto or --think off"
        )
    if status in (503, 429):
        return TransportError("busy", f"Ollama is busy ({status}: {text}) - retry later", retryable=True)
    if status >= 500:
        return TransportError("server_error", f"Ollama failed ({status}: {text})", retryable=True)
    if status == -1:
        return TransportError("stream_error", f"Ollama reported an error mid-stream: {text}", retryable=True)
    return RequestRejected(f"http_{status}", f"Ollama rejected the request ({status}: {text})")


def _looks_missing(text: str) -> bool:
    lowered = text.lower()
    return "not found" in lowered or "does not exist" in lowered


def _collect(parts: Iterator[ollama.ChatResponse], started: float, timeout_s: float) -> Reply:
    """Read a chat stream into one Reply; a stream that ends without ``done`` is a truncated answer."""
    content: list[str] = []
    thinking: list[str] = []
    final: ollama.ChatResponse | None = None
    deadline = started + timeout_s
    try:
        for part in parts:
            content.append(part.message.content or "")
            thinking.append(part.message.thinking or "")
            if part.done:
                final = part
                break
            if time.perf_counter() > deadline:
                raise TransportError("timeout", f"the answer took longer than {timeout_s:g} s")
    finally:
        close = getattr(parts, "close", None)
        if close is not None:
            close()
    wall_s = time.perf_counter() - started
    if final is None:
        return Reply("".join(content), "".join(thinking), "incomplete", wall_s=wall_s, timing_source="wall")
    eval_ns = final.eval_duration or 0
    return Reply(
        content="".join(content),
        thinking="".join(thinking),
        done_reason=final.done_reason,
        prompt_eval_count=final.prompt_eval_count or 0,
        prompt_eval_duration_ns=final.prompt_eval_duration or 0,
        eval_count=final.eval_count or 0,
        eval_duration_ns=eval_ns,
        load_duration_ns=final.load_duration or 0,
        total_duration_ns=final.total_duration or 0,
        wall_s=wall_s,
        timing_source="server" if eval_ns > 0 else "wall",
    )


def _options(options: RequestOptions) -> dict[str, Any]:
    """The runner options, identical for every request to one model (a change reloads it)."""
    return {
        "temperature": options.temperature,
        "seed": options.seed,
        "num_ctx": options.num_ctx,
        "num_predict": options.num_predict,
    }


def _format(options: RequestOptions, schema: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if options.format == "json":
        return "json"
    if options.format == "schema":
        if schema is None:
            raise UsageError("format 'schema' needs a JSON schema - pass the eval set's schema.json")
        return schema
    return None


def _think(options: RequestOptions) -> bool | None:
    return {"auto": None, "off": False, "on": True}[options.think]


def _timeout(total_s: float) -> httpx.Timeout:
    return httpx.Timeout(total_s, connect=min(CONNECT_TIMEOUT_S, total_s))


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
