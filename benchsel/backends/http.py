"""HTTP for the backends that speak it (Ollama, OpenAI-compatible): one limit on the whole request, faults
as benchsel's error classes, short error bodies, URL checks, and abort() for the requests in flight."""

from __future__ import annotations

import contextlib
import html
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchsel.errors import (
    BadReply,
    BenchselError,
    CannotConnect,
    ConnectionFailed,
    RequestAborted,
    RequestRejected,
    RequestTimeout,
    ServerBusy,
    ServerFailed,
    UsageError,
)

__all__ = ["Answer", "Channel", "check_url", "raise_for_status", "short_body"]

CONNECT_TIMEOUT_S = 10.0
BODY_CHARS = 200  # of an error body quoted in a message
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.DOTALL | re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.DOTALL | re.IGNORECASE)


def check_url(url: str, what: str, fix: str, shown: str | None = None) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of an http(s) URL, or a UsageError naming ``what`` (the value as the user
    wrote it: ``shown``) and ``fix``."""
    given = url if shown is None else shown
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", a port that is not a number
        raise UsageError(f"{what} '{given}' is not a valid URL ({exc}) - {fix}") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{what} '{given}' is not an http:// or https:// URL - {fix}")
    if not host or not re.fullmatch(r"[A-Za-z0-9._:%-]+", host):
        raise UsageError(f"{what} '{given}' has no valid host name - {fix}")
    if port == 0:
        raise UsageError(f"{what} '{given}': port 0 is not a port - {fix}")
    return parts.scheme, host, port, parts.path


def short_body(text: str, content_type: str = "") -> str:
    """An error body fit for a one-line message: an HTML page becomes its title (or its text), and
    everything is cut to BODY_CHARS characters."""
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = _TITLE.search(text)
        text = html.unescape(title.group(1) if title else _TAGS.sub(" ", text))
    text = " ".join(text.split())
    return text if len(text) <= BODY_CHARS else text[: BODY_CHARS - 3] + "..."


def raise_for_status(status: int, detail: str, what: str) -> None:
    """The error class for an HTTP status: 429/503 busy, other 5xx failed (both retried), 4xx rejected."""
    if status < 400:
        return
    message = f"{what} -> HTTP {status}: {detail}" if detail else f"{what} -> HTTP {status}"
    if status in (429, 503):
        raise ServerBusy(message)
    if status >= 500:
        raise ServerFailed(message)
    raise RequestRejected(message, status=status)


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer, read within the request's time limit."""

    status: int
    body: bytes
    content_type: str
    what: str

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def error_detail(self) -> str:
        """The error message inside a JSON error body, else the body shortened."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return short_body(self.text(), self.content_type)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            error = error.get("message") or error
        return short_body(str(error if error is not None else data))

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            preview = short_body(self.text(), self.content_type)
            raise BadReply(f"{self.what}: the server sent a body that is not JSON: {preview!r}") from exc


class _Watch:
    """One request in flight: when its deadline passes, or on abort(), its socket is shut down, which
    ends a read blocked on it at once (an httpx read timeout only limits each read, so a server that
    trickles one byte a second would otherwise never time out)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.cut, args=("timeout",))
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep the socket of the connection this request opens."""
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            with self._lock:
                self._sock = sock if isinstance(sock, socket.socket) else None
                if self.reason is not None:
                    self._shutdown()

    def cut(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
                self._shutdown()

    def check(self) -> None:
        if self.reason is None and time.monotonic() >= self.deadline:
            self.cut("timeout")
        if self.reason is not None:
            raise _Cut()

    def close(self) -> None:
        self._timer.cancel()

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to cut
                self._sock.shutdown(socket.SHUT_RDWR)


class _Cut(Exception):
    pass


class Channel:
    """Requests to one server through an httpx client, each bounded by one deadline. ``abort()`` ends every
    request in flight (the runner calls it on Ctrl-C so no thread waits for a slow answer)."""

    def __init__(self, client: httpx.Client | None = None, headers: dict[str, str] | None = None) -> None:
        # No keep-alive: each request opens its own connection, so its socket is known (the trace hook)
        # and can be shut down at the deadline even while the server has not sent a header yet.
        self._owns = client is None
        self.client = client or httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
        self.headers = headers or {}
        self._inflight: set[_Watch] = set()
        self._lock = threading.Lock()

    def request(self, method: str, url: str, *, timeout_s: float, json: Any = None) -> Answer:
        """The whole answer (any status), read within ``timeout_s``; transport faults raise."""
        with self.stream(method, url, timeout_s=timeout_s, json=json) as (response, chunks):
            body = b"".join(chunks)
            return Answer(
                response.status_code, body, response.headers.get("content-type", ""), f"{method} {url}"
            )

    @contextmanager
    def stream(
        self, method: str, url: str, *, timeout_s: float, json: Any = None
    ) -> Iterator[tuple[httpx.Response, Iterator[bytes]]]:
        """The response and an iterator over its body; the deadline covers both."""
        what = f"{method} {url}"
        watch = _Watch(time.monotonic() + timeout_s)
        with self._lock:
            self._inflight.add(watch)
        timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        try:
            request = self.client.build_request(
                method,
                url,
                json=json,
                headers=self.headers,
                timeout=timeout,
                extensions={"trace": watch.trace},
            )
            response = self.client.send(request, stream=True)
            try:
                watch.check()
                yield response, _chunks(response, watch)
            finally:
                response.close()
        except (httpx.HTTPError, _Cut) as exc:
            raise _translate(exc, watch, what, timeout_s) from None
        finally:
            watch.close()
            with self._lock:
                self._inflight.discard(watch)

    def abort(self) -> None:
        """End every request in flight now; each raises RequestAborted in its own thread."""
        with self._lock:
            watches = list(self._inflight)
        for watch in watches:
            watch.cut("abort")

    def close(self) -> None:
        self.abort()
        if self._owns:
            self.client.close()


def _chunks(response: httpx.Response, watch: _Watch) -> Iterator[bytes]:
    for chunk in response.iter_bytes():
        watch.check()
        yield chunk
    watch.check()


def _translate(exc: Exception, watch: _Watch, what: str, timeout_s: float) -> BenchselError:
    if watch.reason == "abort":
        return RequestAborted(f"{what} was abandoned: the run is stopping")
    if watch.reason == "timeout" or isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"{what} took longer than {timeout_s:g} s (--timeout)")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UsageError(f"{what}: {exc} - give an http:// or https:// URL")
    if isinstance(exc, httpx.ConnectError):
        return CannotConnect(f"{what} failed: {exc or type(exc).__name__}")
    return ConnectionFailed(f"{what} failed: {exc or type(exc).__name__}")
