"""A loopback HTTP server that misbehaves on purpose, for the fault tests of both HTTP backends.

OpenAI-compatible routes take the fault from the first path segment: ``{url}/{mode}/v1/chat/completions``.
Ollama's native ``/api/chat`` serves the fault named by ``ollama_mode``; ``not_ollama=True`` makes every
``/api/*`` route answer 404 like a web server that is not Ollama.

Modes: ``ok``; ``big`` (4 kB of output); ``object``/``list``/``number`` (``message.content`` of that
JSON type); ``surrogate`` (a lone
``\\ud800`` escaped in the content); ``split-pair`` (Ollama: an emoji's surrogate pair split across two
stream lines); ``trickle`` (headers, then one byte a ``trickle_s``, never done); ``endless`` (headers and part
of a body, then silence); ``silent`` (no answer at all); ``html501`` (an HTML error page).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FaultServer", "GOOD_OUTPUT"]

GOOD_OUTPUT = {"entities": [{"name": "Redis", "type": "database"}], "relationships": []}
_HTML = b"<!DOCTYPE html><html><head><title>501 Not Implemented</title><style>body{}</style></head><body>" + (
    b"<h1>Not Implemented</h1><p>" + b"lorem ipsum " * 400 + b"</p></body></html>"
)


class FaultServer:
    """``with FaultServer() as server: server.url``; records every request path in ``paths``."""

    def __init__(self, *, trickle_s: float = 0.5, not_ollama: bool = False) -> None:
        self.trickle_s = trickle_s
        self.not_ollama = not_ollama
        self.ollama_mode = "ok"
        self.openai_mode: str | None = None  # when set, every OpenAI-compatible route serves this fault
        self.paths: list[str] = []
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultServer:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._server = _Quiet(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fault-server").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (the point of most faults here) is not an error of the server."""


class _Handler(BaseHTTPRequestHandler):
    owner: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.owner.paths.append(self.path)
        if self.path.startswith("/api/"):
            if self.owner.not_ollama:
                self._send(404, b"404 page not found", "text/plain")
            elif self.path == "/api/version":
                self._json({"version": "0.0-fault"})
            else:
                self._json({"models": []})
        elif self.path.endswith("/v1/models"):
            self._json({"object": "list", "data": [{"id": "m"}]})
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        self.owner.paths.append(self.path)
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/api/"):
            if self.owner.not_ollama:
                self._send(404, b"404 page not found", "text/plain")
            else:
                self._ollama_chat(self.owner.ollama_mode)
            return
        mode = self.owner.openai_mode or self.path.strip("/").split("/", 1)[0]
        self._openai_chat(mode)

    # --- OpenAI-compatible ----------------------------------------------------------------------

    def _openai_chat(self, mode: str) -> None:
        content: Any = json.dumps(GOOD_OUTPUT) + (" " * 4000 if mode == "big" else "")
        if mode in ("object", "list", "number"):
            content = {"object": GOOD_OUTPUT, "list": [GOOD_OUTPUT], "number": 42}[mode]
        if mode == "surrogate":
            # json.dumps would escape the backslash; write the escape itself, as a server may
            body = (
                b'{"choices": [{"message": {"content": "\\ud800 '
                + json.dumps(json.dumps(GOOD_OUTPUT))[1:].encode()
                + b'}, "finish_reason": "stop"}], "usage": {"prompt_tokens": "many"}}'
            )
            self._send(200, body, "application/json")
            return
        if mode in ("trickle", "endless", "silent"):
            self._hold(mode)
            return
        if mode == "html501":
            self._send(501, _HTML, "text/html")
            return
        body = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
        self._json(body)

    # --- Ollama ---------------------------------------------------------------------------------

    def _ollama_chat(self, mode: str) -> None:
        if mode in ("trickle", "endless", "silent"):
            self._hold(mode)
            return
        text = json.dumps(GOOD_OUTPUT)
        lines: list[bytes]
        if mode == "surrogate":
            lines = [
                b'{"message": {"role": "assistant", "content": "\\ud800 '
                + text.encode().replace(b'"', b'\\"')
                + b'"}, "done": false}'
            ]
        elif mode == "split-pair":
            lines = [
                b'{"message": {"role": "assistant", "content": "\\ud83d"}, "done": false}',
                b'{"message": {"role": "assistant", "content": "\\ude00"}, "done": false}',
            ]
        elif mode in ("object", "list", "number"):
            value = {"object": GOOD_OUTPUT, "list": [GOOD_OUTPUT], "number": 42}[mode]
            lines = [json.dumps({"message": {"role": "assistant", "content": value}, "done": False}).encode()]
        else:
            lines = [json.dumps({"message": {"role": "assistant", "content": text}, "done": False}).encode()]
        final = {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "eval_count": "lots",
            "eval_duration": 1_000_000,
        }
        lines.append(json.dumps(final).encode())
        self._send(200, b"\n".join(lines) + b"\n", "application/x-ndjson")

    # --- plumbing -------------------------------------------------------------------------------

    def _hold(self, mode: str) -> None:
        """Never finish: trickle a byte at a time, or go silent after part of a body, or say nothing."""
        if mode != "silent":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b'{"choices": [')
            self.wfile.flush()
        stopping = self.owner.stopping
        try:
            while not stopping.is_set():
                if mode == "trickle":
                    self.wfile.write(b" ")
                    self.wfile.flush()
                stopping.wait(self.owner.trickle_s)
        except OSError:
            return  # the client gave up: what a timeout should do

    def _json(self, body: Any, status: int = 200) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def wait_until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())
