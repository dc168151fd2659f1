"""Ollama's native API through the official ``ollama`` client: describe, load, chat, memory, unload, pull."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydantic

from benchsel.backends.http import Answer, Channel, short_body
from benchsel.backends.ollama_host import resolve_host
from benchsel.errors import (
    BackendUnavailable,
    BadReply,
    BenchselError,
    CannotConnect,
    CapabilityError,
    ConnectionFailed,
    ModelNotFound,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerFailed,
    UsageError,
)
from benchsel.records import Memory, ModelSnapshot, Reply, RequestOptions, reply_count, reply_text

# isort: split
# The ollama package builds a client from OLLAMA_HOST as it is imported, and a malformed value fails there
# with a bare ValueError: benchsel checks the value first, so the error is one line that names the fix.
resolve_host()
import ollama  # noqa: E402

__all__ = ["OllamaBackend", "PullProgress", "normalize_model_name", "resolve_host"]

CONNECT_TIMEOUT_S = 10.0
# Loading weights from disk can take far longer than one answer: the load gets its own time limit.
LOAD_TIMEOUT_S = 600.0
UNLOAD_WAIT_S = 15.0
UNLOAD_POLL_S = 0.05
MEMORY_SOURCE = "ollama /api/ps"


@dataclass(frozen=True)
class PullProgress:
    """One status line of ``/api/pull``; ``total``/``completed`` are bytes of the layer being pulled."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


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
        self._channel = Channel()

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
                return dict(entry.model_dump())
        return {}

    # --- running --------------------------------------------------------------------------------

    def load(self, model: str, options: RequestOptions) -> float:
        """Load-only chat (``messages: []``) with the same options as the timed requests."""
        started = time.perf_counter()
        limit = max(options.timeout_s, LOAD_TIMEOUT_S)
        response = self._call(
            lambda: self._client(limit).chat(model=model, messages=[], options=_options(options)),
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
            "stream": True,
        }
        request = {key: value for key, value in request.items() if value is not None}  # as the client sends
        started = time.perf_counter()
        url = f"{self.host}/api/chat"
        # benchsel reads the stream itself (not through the ollama client): one deadline covers the whole
        # answer, and a field of an unexpected type is kept as the model's output instead of failing.
        try:
            with self._channel.stream("POST", url, timeout_s=options.timeout_s, json=request) as (
                response,
                chunks,
            ):
                if response.status_code >= 400:
                    body = b"".join(chunks)
                    answer = Answer(response.status_code, body, response.headers.get("content-type", ""), url)
                    raise self._checked(_from_response(answer.error_detail(), answer.status, model))
                return _collect(_lines(chunks), started, model)
        except CannotConnect:
            raise BackendUnavailable(_not_answering(self.host)) from None

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
        except _FAULTS as exc:
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
            raise RequestRejected(f"Ollama could not create '{name}': {reply['error']}")

    def abort(self) -> None:
        self._channel.abort()

    def create_from_gguf(self, name: str, gguf_path: Path, digest: str, **fields: Any) -> None:
        """Upload a whole GGUF (a merged fine-tune) and ``POST /api/create`` ``name`` from it; ``fields``
        are further create fields (``template``, ``parameters``, ``license``)."""
        self.upload_blob(gguf_path, digest)
        body = {"model": name, "files": {Path(gguf_path).name: digest}, "stream": False}
        body.update({key: value for key, value in fields.items() if value})
        reply = self._get_json("POST", "/api/create", model=name, body=body)
        if reply.get("error"):
            raise RequestRejected(f"Ollama could not create '{name}': {reply['error']}")

    def close(self) -> None:
        self._channel.close()
        for client in self._clients.values():
            close: Callable[[], None] = client.close  # ollama's Client.close carries no annotations
            close()
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

        shown: dict[str, Any] = self._call(send, model=model)
        return shown

    def _call(self, fn: Callable[[], Any], *, model: str | None) -> Any:
        try:
            return fn()
        except _FAULTS as exc:  # transport and HTTP faults only: a bug raises as itself
            raise self._checked(translate_error(exc, model=model, host=self.host)) from None

    def _translate(self, exc: Exception, model: str | None) -> BenchselError:
        return self._checked(translate_error(exc, model=model, host=self.host))

    def _checked(self, error: BenchselError) -> BenchselError:
        """A 404 means "model not pulled" only from Ollama: from another server it means wrong address."""
        if isinstance(error, ModelNotFound) and not self._is_ollama():
            return BackendUnavailable(
                f"the server at {self.host} is not Ollama (it answers 404 to Ollama's API) - set OLLAMA_HOST "
                "or --host to an Ollama server, or use --backend openai --base-url URL for an "
                "OpenAI-compatible one"
            )
        return error

    def _is_ollama(self) -> bool:
        try:
            response = self._http.get("/api/version", timeout=CONNECT_TIMEOUT_S)
            return response.status_code == 200 and "version" in response.json()
        except (httpx.HTTPError, ValueError, TypeError):
            return False


# What the ollama client and httpx raise for a fault on the way: the client turns a refused connection
# into ConnectionError, an unreadable reply into a JSON or pydantic error.
_FAULTS = (
    ollama.ResponseError,
    httpx.HTTPError,
    ConnectionError,
    json.JSONDecodeError,
    pydantic.ValidationError,
)


def _not_answering(host: str) -> str:
    return f"Ollama is not answering at {host}: start it with `ollama serve` or set OLLAMA_HOST"


def translate_error(exc: Exception, *, model: str | None, host: str) -> BenchselError:
    """One of benchsel's errors, with the fix in the message, for a fault the client or httpx raised."""
    if isinstance(exc, ollama.ResponseError):
        return _from_response(exc.error, exc.status_code, model)
    if isinstance(exc, ConnectionError | httpx.ConnectError):
        return BackendUnavailable(_not_answering(host))
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"Ollama at {host} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return ConnectionFailed(f"Ollama at {host} dropped the connection: {exc or type(exc).__name__}")
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError):
        return BadReply(f"Ollama at {host} sent an unreadable reply: {short_body(str(exc))}")
    if isinstance(exc, httpx.HTTPError):
        return ConnectionFailed(f"request to Ollama at {host} failed: {exc}")
    raise TypeError(f"not a transport fault: {exc!r}") from exc


def _from_response(error: str, status: int, model: str | None) -> BenchselError:
    text = short_body(str(error))
    if model is not None and (status == 404 or (status == -1 and _looks_missing(text))):
        return ModelNotFound(f"model '{model}' is not pulled - run `ollama pull {model}` or add --pull")
    if "does not support thinking" in text:
        return CapabilityError(
            f"model '{model}' does not support thinking ({text}) - run it with --think auto or --think off"
        )
    if status in (503, 429):
        return ServerBusy(f"Ollama is busy ({status}: {text}) - retry later")
    if status >= 500:
        return ServerFailed(f"Ollama failed ({status}: {text})")
    if status == -1:
        return ServerFailed(f"Ollama reported an error mid-stream: {text}")
    return RequestRejected(f"Ollama rejected the request ({status}: {text})", status=status)


def _looks_missing(text: str) -> bool:
    lowered = text.lower()
    return "not found" in lowered or "does not exist" in lowered


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of an NDJSON stream, whatever the chunking."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


def _collect(lines: Iterable[bytes], started: float, model: str) -> Reply:
    """Read a chat stream into one Reply; a stream that ends without ``done`` is a truncated answer."""
    content: list[str] = []
    thinking: list[str] = []
    final: dict[str, Any] | None = None
    for line in lines:
        try:
            part = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise BadReply(f"Ollama sent a stream line that is not JSON: {short_body(repr(line))}") from exc
        if not isinstance(part, dict):
            raise BadReply(f"Ollama sent a stream line that is not an object: {short_body(repr(line))}")
        if "error" in part:
            raise _from_response(str(part["error"]), -1, model)
        message = part.get("message")
        if isinstance(message, dict):
            content.append(_piece(message.get("content")))
            thinking.append(_piece(message.get("thinking")))
        if part.get("done"):
            final = part
            break
    wall_s = time.perf_counter() - started
    # pieces are joined before cleaning: a surrogate pair split across two lines stays one character
    text, thought = reply_text("".join(content)), reply_text("".join(thinking))
    if final is None:
        return Reply(text, thought, "incomplete", wall_s=wall_s, timing_source="wall")
    eval_ns = reply_count(final.get("eval_duration"))
    done_reason = final.get("done_reason")
    return Reply(
        content=text,
        thinking=thought,
        done_reason=done_reason if isinstance(done_reason, str) else None,
        prompt_eval_count=reply_count(final.get("prompt_eval_count")),
        prompt_eval_duration_ns=reply_count(final.get("prompt_eval_duration")),
        eval_count=reply_count(final.get("eval_count")),
        eval_duration_ns=eval_ns,
        load_duration_ns=reply_count(final.get("load_duration")),
        total_duration_ns=reply_count(final.get("total_duration")),
        wall_s=wall_s,
        timing_source="server" if eval_ns > 0 else "wall",
    )


def _piece(value: Any) -> str:
    """One streamed piece of a field; a piece that is not text is kept as its JSON."""
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False, default=str)


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
