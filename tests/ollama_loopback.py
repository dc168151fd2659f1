"""A loopback server that speaks Ollama's native API (see /work/shared/ollama-api.md) and generates with a
REAL llama-server: each Ollama tag maps to a GGUF file and a running ``LlamaServer``.

It is a test double in three documented ways:
- "loading" marks the model loaded in ``/api/ps``; the llama-server is already running, and the load time
  reported (``load_duration``) is the time that server really took to start. A request whose ``num_ctx``
  differs from the loaded one counts a reload in ``reloads`` (real Ollama would restart the runner).
- a model given ``thinking_text`` claims the ``thinking`` capability and, when thinking is on, returns that
  fixed text as ``message.thinking`` before the real generation; its tokens (counted by llama-server's
  ``/tokenize``) are added to ``eval_count`` as Ollama counts thinking tokens. Durations stay the real ones.
- ``inject()`` makes the next requests fail: an HTTP status, a dropped connection, a delay, a stream
  without its ``done`` line, or an error line mid-stream.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import httpx

from benchsel.backends.demo import DEMO_MODELS, demo_chat_template, demo_model_path
from benchsel.backends.ggufmeta import file_sha256, parameter_size, quantization_name, read_model_info

__all__ = ["FakeModel", "FakeOllama", "Fault", "FaultKind", "demo_fake_model"]

VERSION = "0.33.0"
DEFAULT_KEEP_ALIVE_S = 300.0
FaultKind = Literal["status", "drop", "delay", "no_done", "error_line"]
_STATUS_TEXT = {
    503: "server busy, please try again.  maximum pending requests exceeded",
    500: "llama runner process has terminated: exit status 2",
}


@dataclass
class FakeModel:
    """One Ollama tag: its GGUF file and the running llama-server (``base_url``, ``load_s``,
    ``memory_bytes``, ``device_memory_bytes``) that generates for it. ``engine`` may be None when a test
    only needs the metadata routes (/api/tags, /api/show, /api/pull)."""

    name: str
    gguf_path: Path
    engine: Any
    thinking_text: str | None = None
    honours_think_off: bool = True
    template: str | None = None
    parameters: str = ""
    projector_info: dict[str, Any] | None = None  # a test double for a multimodal model's projector
    adapters: dict[str, str] = field(default_factory=dict)  # name -> digest, set by /api/create
    license: str = ""

    @property
    def thinks(self) -> bool:
        return self.thinking_text is not None


def demo_fake_model(name: str, engine: Any) -> FakeModel:
    """The Ollama tag of a demo model (smollm2:135m, gemma3:270m, qwen2.5-coder:0.5b, ...) served from
    benchsel's own copy of the GGUF, as ``ollama pull`` of the same tag would give it."""
    return FakeModel(name, demo_model_path(name), engine)


@dataclass
class Fault:
    kind: FaultKind
    path: str = "/api/chat"
    status: int = 503
    delay_s: float = 0.0


@dataclass
class _Loaded:
    num_ctx: int | None
    expires_at: float | None  # time.time(); None = never


@dataclass
class _State:
    models: dict[str, FakeModel]
    unload_delay_s: float
    loaded: dict[str, _Loaded] = field(default_factory=dict)
    reloads: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size of uploaded files
    blob_files: dict[str, Path] = field(default_factory=dict)  # digest -> the uploaded bytes, on disk
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeOllama:
    """``with FakeOllama([FakeModel(...)]) as fake: fake.url``; Ollama's API on 127.0.0.1, a free port."""

    def __init__(self, models: Iterable[FakeModel], *, unload_delay_s: float = 0.2) -> None:
        named = {_full_name(m.name): m for m in models}
        self.state = _State(models=named, unload_delay_s=unload_delay_s)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeOllama is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def reloads(self) -> collections.Counter[str]:
        return self.state.reloads

    @property
    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        """Every POST body received, as (path, body), in order."""
        return self.state.requests

    def loaded_models(self) -> list[str]:
        with self.state.lock:
            _expire(self.state)
            return sorted(self.state.loaded)

    def inject(
        self,
        kind: FaultKind,
        count: int = 1,
        *,
        path: str = "/api/chat",
        status: int = 503,
        delay_s: float = 0,
    ) -> None:
        """Make the next ``count`` requests to ``path`` fail in the way ``kind`` names."""
        with self.state.lock:
            self.state.faults.extend(Fault(kind, path, status, delay_s) for _ in range(count))

    def start(self) -> FakeOllama:
        state = self.state
        handler = type("Handler", (_Handler,), {"state": state})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for path in self.state.blob_files.values():
            path.unlink(missing_ok=True)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a fault test, a timeout) is not an error of the server."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


def _full_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _parameter_lines(parameters: dict[str, Any]) -> list[str]:
    """/api/create's ``parameters`` as the Modelfile lines /api/show returns (one line a value)."""
    return [
        f"{k} {json.dumps(v)}" for k, vs in parameters.items() for v in (vs if isinstance(vs, list) else [vs])
    ]


def _now_iso(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _expire(state: _State) -> None:
    now = time.time()
    for name, entry in list(state.loaded.items()):
        if entry.expires_at is not None and entry.expires_at <= now:
            del state.loaded[name]


_METRICS = frozenset(
    (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    )
)
_DURATION = re.compile(r"^(-?[\d.]+)(ms|s|m|h)?$")


def _keep_alive_s(value: Any) -> float:
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match:
        return DEFAULT_KEEP_ALIVE_S
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * scale


def _drop_zero(reply: dict[str, Any]) -> dict[str, Any]:
    """Ollama omits zero-valued metrics from its JSON."""
    return {k: v for k, v in reply.items() if not (k in _METRICS and not v)}


def _details(model: FakeModel) -> dict[str, Any]:
    info = read_model_info(model.gguf_path)
    arch = info.get("general.architecture")
    return {
        "parent_model": "",
        "format": "gguf",
        "family": arch,
        "families": [arch],
        "parameter_size": parameter_size(info.get("general.parameter_count")),
        "quantization_level": quantization_name(info.get("general.file_type")),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State
    fault: Fault | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # --- plumbing -------------------------------------------------------------------------------

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {}

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _line(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Cut the connection without finishing the response."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _take_fault(self) -> Fault | None:
        with self.state.lock:
            for index, fault in enumerate(self.state.faults):
                if fault.path == self.path:
                    return self.state.faults.pop(index)
        return None

    def _model(self, body: dict[str, Any]) -> FakeModel | None:
        name = str(body.get("model") or body.get("name") or "")
        model = self.state.models.get(_full_name(name)) if name else None
        if model is None:
            self._error(404, f"model '{name}' not found")
        return model

    # --- routes ---------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        if self.path.startswith("/api/blobs/"):
            with self.state.lock:
                known = self.path.removeprefix("/api/blobs/") in self.state.blobs
            self._send(200 if known else 404, b"", "text/plain")
            return
        self.do_GET()

    def do_GET(self) -> None:
        routes = {
            "/": self._root,
            "/api/version": self._version,
            "/api/tags": self._tags,
            "/api/ps": self._ps,
        }
        self._dispatch(routes, None)

    def do_POST(self) -> None:
        if self.path.startswith("/api/blobs/"):
            self._upload_blob()
            return
        body = self._body()
        with self.state.lock:
            self.state.requests.append((self.path, body))
        routes = {"/api/chat": self._chat, "/api/show": self._show, "/api/pull": self._pull}
        routes["/api/create"] = self._create
        self._dispatch(routes, body)

    def _dispatch(self, routes: dict[str, Any], body: dict[str, Any] | None) -> None:
        route = routes.get(self.path)
        if route is None:
            self._send(404, b"404 page not found", "text/plain")
            return
        fault = self.fault = self._take_fault()
        try:
            if fault is not None and self._apply(fault, body):
                return
            route() if body is None else route(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _apply(self, fault: Fault, body: dict[str, Any] | None) -> bool:
        """Act out a fault; True when it replaced the response."""
        if fault.kind == "status":
            self._error(fault.status, _STATUS_TEXT.get(fault.status, f"injected error {fault.status}"))
            return True
        if fault.kind == "delay":
            time.sleep(fault.delay_s)
            return False
        if fault.kind == "drop":
            streaming = body is not None and body.get("stream", True)
            if streaming:
                self._start_stream()
                self._line(
                    {"model": (body or {}).get("model"), "message": {"role": "assistant", "content": "{"}}
                )
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"model": ')
            self._drop()
            return True
        return False  # no_done / error_line act inside the chat stream

    def _root(self) -> None:
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def _version(self) -> None:
        self._send(200, {"version": VERSION})

    def _tags(self) -> None:
        entries = []
        for name, model in self.state.models.items():
            stat = model.gguf_path.stat()
            entries.append(
                {
                    "name": name,
                    "model": name,
                    "modified_at": _now_iso(stat.st_mtime),
                    "size": stat.st_size,
                    "digest": file_sha256(model.gguf_path),
                    "details": _details(model),
                }
            )
        self._send(200, {"models": entries})

    def _ps(self) -> None:
        with self.state.lock:
            _expire(self.state)
            loaded = dict(self.state.loaded)
        entries = []
        for name, entry in loaded.items():
            model = self.state.models[name]
            size = model.engine.memory_bytes or model.gguf_path.stat().st_size
            expires = entry.expires_at if entry.expires_at is not None else time.time() + 10 * 365 * 86400
            entries.append(
                {
                    "name": name,
                    "model": name,
                    "size": int(size),
                    "digest": file_sha256(model.gguf_path),
                    "details": _details(model),
                    "expires_at": _now_iso(expires),
                    "size_vram": int(getattr(model.engine, "device_memory_bytes", 0) or 0),
                    "context_length": entry.num_ctx or 4096,
                }
            )
        self._send(200, {"models": entries})

    def _show(self, body: dict[str, Any]) -> None:
        model = self._model(body)
        if model is None:
            return
        info = read_model_info(model.gguf_path)
        if not body.get("verbose"):
            info = {k: (None if isinstance(v, list) and len(v) > 5 else v) for k, v in info.items()}
        capabilities = ["completion"] + (["thinking"] if model.thinks else [])
        capabilities += ["vision"] if model.projector_info else []
        template = model.template or demo_chat_template(model.name) or info.get("tokenizer.chat_template", "")
        demo = DEMO_MODELS.get(model.name)
        reply = {
            "license": model.license or (demo.licence if demo else ""),
            "modelfile": f"FROM {model.gguf_path}\n",
            "parameters": model.parameters,
            "template": template,
            "details": _details(model),
            "model_info": info,
            "capabilities": capabilities,
            "modified_at": _now_iso(model.gguf_path.stat().st_mtime),
        }
        if model.projector_info:
            reply["projector_info"] = model.projector_info
        self._send(200, reply)

    def _upload_blob(self) -> None:
        """``POST /api/blobs/sha256:<hex>``: the body must hash to the digest (400 otherwise)."""
        digest = self.path.removeprefix("/api/blobs/")
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if digest != "sha256:" + hashlib.sha256(data).hexdigest():
            self._error(400, "digest mismatch")
            return
        with self.state.lock:
            existed = digest in self.state.blobs
            self.state.blobs[digest] = len(data)
            if not existed:  # kept so that a model created FROM the file (``files``) can be shown
                with tempfile.NamedTemporaryFile(prefix="fake-ollama-", delete=False) as handle:
                    handle.write(data)
                self.state.blob_files[digest] = Path(handle.name)
        self._send(200 if existed else 201, b"", "text/plain")

    def _create(self, body: dict[str, Any]) -> None:
        """``POST /api/create`` from an existing tag plus adapters: a new tag that serves the base's GGUF
        and engine (the double does not apply the adapter; it checks the adapter was uploaded); or from an
        uploaded GGUF (``files``): a new tag with no engine, for the metadata routes."""
        if body.get("files") and not body.get("from"):
            self._create_from_files(body)
            return
        base = self.state.models.get(_full_name(str(body.get("from") or "")))
        if base is None:
            self._error(404, f"model '{body.get('from')}' not found")
            return
        missing = [d for d in (body.get("adapters") or {}).values() if d not in self.state.blobs]
        if missing:
            self._error(400, f"blob {missing[0]} not found - upload it with POST /api/blobs first")
            return
        lines = _parameter_lines(body.get("parameters") or {})
        created = replace(
            base, name=str(body.get("model")), template=body.get("template") or base.template,
            parameters="\n".join(lines) or base.parameters, adapters=dict(body.get("adapters") or {}),
        )  # fmt: skip
        with self.state.lock:
            self.state.models[_full_name(created.name)] = created
        self._send(200, {"status": "success"})

    def _create_from_files(self, body: dict[str, Any]) -> None:
        [digest] = list(body["files"].values())
        path = self.state.blob_files.get(digest)
        if path is None:
            self._error(400, f"blob {digest} not found - upload it with POST /api/blobs first")
            return
        lines = _parameter_lines(body.get("parameters") or {})
        created = FakeModel(
            str(body.get("model")), path, engine=None, template=body.get("template"),
            parameters="\n".join(lines), license=str(body.get("license") or ""),
        )  # fmt: skip
        with self.state.lock:
            self.state.models[_full_name(created.name)] = created
        self._send(200, {"status": "success"})

    def _pull(self, body: dict[str, Any]) -> None:
        name = _full_name(str(body.get("model") or body.get("name") or ""))
        model = self.state.models.get(name)
        stream = body.get("stream", True)
        if not stream:
            if model is None:
                self._error(500, "pull model manifest: file does not exist")
            else:
                self._send(200, {"status": "success"})
            return
        self._start_stream()
        self._line({"status": "pulling manifest"})
        if model is None:
            self._line({"error": "pull model manifest: file does not exist"})
            self._end_stream()
            return
        digest = f"sha256:{file_sha256(model.gguf_path)}"
        total = model.gguf_path.stat().st_size
        for step in range(5):
            completed = total * step // 4
            self._line(
                {
                    "status": f"pulling {digest[7:19]}",
                    "digest": digest,
                    "total": total,
                    "completed": completed,
                }
            )
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            self._line({"status": status})
        self._end_stream()

    # --- chat -----------------------------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> None:
        started = time.perf_counter_ns()
        model = self._model(body)
        if model is None:
            return
        think = body.get("think")
        if think not in (None, False) and not model.thinks:
            self._error(400, f'"{model.name}" does not support thinking')
            return
        options = body.get("options") or {}
        stream = body.get("stream", True)
        messages = body.get("messages") or []
        unload_only = not messages and _keep_alive_s(body.get("keep_alive")) == 0
        load_ns = (
            0 if unload_only else self._ensure_loaded(model, options.get("num_ctx"), body.get("keep_alive"))
        )
        if not messages:
            self._load_only(model, body, load_ns, started, stream)
            return
        thinking = (
            model.thinking_text
            if model.thinks and (think is not False or not model.honours_think_off)
            else None
        )
        generation = _Generation(model, messages, options, body.get("format"), thinking)
        if stream:
            self._stream_chat(generation, load_ns, started, self.fault)
        else:
            try:
                reply = generation.run()
            except _EngineError as exc:
                self._error(500, str(exc))
                return
            self._send(200, generation.final(reply, load_ns, started, with_text=True))
        if _keep_alive_s(body.get("keep_alive")) == 0:
            self._expire_soon(model.name)

    def _ensure_loaded(self, model: FakeModel, num_ctx: Any, keep_alive: Any) -> int:
        name = _full_name(model.name)
        keep_s = _keep_alive_s(keep_alive)
        expires = None if keep_s < 0 else time.time() + max(keep_s, self.state.unload_delay_s)
        with self.state.lock:
            _expire(self.state)
            entry = self.state.loaded.get(name)
            ctx = int(num_ctx) if num_ctx else (entry.num_ctx if entry else None)
            fresh = entry is None or (num_ctx is not None and entry.num_ctx != ctx)
            if entry is not None and fresh:
                self.state.reloads[name] += 1
            self.state.loaded[name] = _Loaded(ctx, expires)
        return int(model.engine.load_s * 1e9) if fresh else 0

    def _expire_soon(self, name: str) -> None:
        """keep_alive 0: the model leaves /api/ps a little later (Ollama unloads asynchronously)."""
        with self.state.lock:
            entry = self.state.loaded.get(_full_name(name))
            if entry is not None:
                entry.expires_at = time.time() + self.state.unload_delay_s

    def _load_only(
        self, model: FakeModel, body: dict[str, Any], load_ns: int, started: int, stream: bool
    ) -> None:
        unload = _keep_alive_s(body.get("keep_alive")) == 0
        reply = {
            "model": model.name,
            "created_at": _now_iso(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "unload" if unload else "load",
            "total_duration": time.perf_counter_ns() - started + load_ns,
            "load_duration": load_ns,
        }
        if unload:
            self._expire_soon(model.name)
        if stream:
            self._start_stream()
            self._line(_drop_zero(reply))
            self._end_stream()
        else:
            self._send(200, _drop_zero(reply))

    def _stream_chat(self, generation: _Generation, load_ns: int, started: int, fault: Fault | None) -> None:
        self._start_stream()
        try:
            for piece in generation.pieces():
                self._line(generation.partial(piece))
                if fault is not None and fault.kind == "error_line":
                    raise _EngineError("an error was encountered while running the model: injected")
        except _EngineError as exc:  # after streaming started, Ollama sends an error line with HTTP 200
            self._line({"error": str(exc)})
            self._end_stream()
            return
        if fault is None or fault.kind != "no_done":
            self._line(generation.final(generation.reply, load_ns, started, with_text=False))
        self._end_stream()


@dataclass
class _Result:
    content: str = ""
    finish_reason: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)


class _Generation:
    """One chat request forwarded to llama-server's /v1/chat/completions."""

    def __init__(
        self,
        model: FakeModel,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        fmt: Any,
        thinking: str | None,
    ) -> None:
        self.model, self.thinking = model, thinking
        self.request = _llama_request(messages, options, fmt)
        self.reply = _Result()

    def run(self) -> _Result:
        try:
            with httpx.Client(base_url=self.model.engine.base_url, timeout=600) as client:
                response = client.post("/v1/chat/completions", json={**self.request, "stream": False})
        except httpx.HTTPError as exc:
            raise _EngineError(f"llama runner is not answering: {exc}") from exc
        _raise_for_engine(response)
        data = response.json()
        choice = data["choices"][0]
        self.reply = _Result(
            choice["message"].get("content") or "", choice.get("finish_reason"), data.get("timings", {})
        )
        return self.reply

    def pieces(self) -> Iterator[tuple[str, str]]:
        """("thinking" | "content", text) pieces as they arrive."""
        if self.thinking:
            for word in re.findall(r"\S+\s*", self.thinking):
                yield "thinking", word
        try:
            yield from self._engine_pieces()
        except httpx.HTTPError as exc:
            raise _EngineError(f"llama runner is not answering: {exc}") from exc

    def _engine_pieces(self) -> Iterator[tuple[str, str]]:
        request = {**self.request, "stream": True}
        with (
            httpx.Client(base_url=self.model.engine.base_url, timeout=600) as client,
            client.stream("POST", "/v1/chat/completions", json=request) as response,
        ):
            if response.status_code >= 400:
                response.read()
                _raise_for_engine(response)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                self.reply.timings = chunk.get("timings") or self.reply.timings
                for choice in chunk.get("choices") or []:
                    self.reply.finish_reason = choice.get("finish_reason") or self.reply.finish_reason
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        self.reply.content += text
                        yield "content", text

    def partial(self, piece: tuple[str, str]) -> dict[str, Any]:
        kind, text = piece
        message = {"role": "assistant", "content": text if kind == "content" else ""}
        if kind == "thinking":
            message["thinking"] = text
        return {"model": self.model.name, "created_at": _now_iso(), "message": message, "done": False}

    def final(self, reply: _Result, load_ns: int, started: int, *, with_text: bool) -> dict[str, Any]:
        timings = reply.timings
        message: dict[str, Any] = {"role": "assistant", "content": reply.content if with_text else ""}
        if with_text and self.thinking:
            message["thinking"] = self.thinking
        final = {
            "model": self.model.name,
            "created_at": _now_iso(),
            "message": message,
            "done": True,
            "done_reason": "length" if reply.finish_reason == "length" else "stop",
            "total_duration": time.perf_counter_ns() - started + load_ns,
            "load_duration": load_ns,
            "prompt_eval_count": int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0)),
            "prompt_eval_duration": int(float(timings.get("prompt_ms", 0)) * 1e6),
            "eval_count": int(timings.get("predicted_n", 0)) + self._thinking_tokens(),
            "eval_duration": int(float(timings.get("predicted_ms", 0)) * 1e6),
        }
        return _drop_zero(final)

    def _thinking_tokens(self) -> int:
        if not self.thinking:
            return 0
        with httpx.Client(base_url=self.model.engine.base_url, timeout=60) as client:
            tokens = client.post("/tokenize", json={"content": self.thinking}).json().get("tokens", [])
        return len(tokens)


class _EngineError(Exception):
    """llama-server refused or failed a request; Ollama reports it as a 500 or an error line."""


def _raise_for_engine(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            message = response.json().get("error", {}).get("message", response.text)
        except (ValueError, AttributeError):
            message = response.text
        raise _EngineError(f"llama runner error ({response.status_code}): {message}")


def _llama_request(messages: list[dict[str, Any]], options: dict[str, Any], fmt: Any) -> dict[str, Any]:
    """Ollama's chat request as llama-server's OpenAI-compatible one (num_ctx is the server's own)."""
    request: dict[str, Any] = {
        "messages": [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages],
        "temperature": options.get("temperature", 0.8),
        "seed": options.get("seed", -1),
        "top_k": options.get("top_k", 40),
        "top_p": options.get("top_p", 0.9),
    }
    num_predict = int(options.get("num_predict", -1))
    if num_predict > 0:
        request["max_tokens"] = num_predict
    if options.get("stop"):
        request["stop"] = list(options["stop"])
    if fmt == "json":
        request["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": fmt}}
    return request
