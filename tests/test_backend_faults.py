"""Both HTTP backends against a misbehaving server (tests/fault_servers.py): odd replies are kept and
scored, --timeout bounds the whole request, abort() ends a request at once, bad hosts and URLs are one
clear error, and a server that is not Ollama is not reported as "model not pulled"."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_servers import GOOD_OUTPUT, FaultServer

from benchsel import runner
from benchsel.backends.factory import make_backend
from benchsel.backends.http import short_body
from benchsel.backends.llamacpp import LlamaCppBackend
from benchsel.backends.ollama import OllamaBackend, resolve_host
from benchsel.backends.openai import OpenAIBackend
from benchsel.errors import (
    BackendUnavailable,
    ModelNotFound,
    RequestAborted,
    RequestTimeout,
    ServerFailed,
    UsageError,
)
from benchsel.evalset import EvalSet, load_evalset
from benchsel.records import RequestOptions, reply_text, storable_text
from benchsel.runner import RunSpec
from benchsel.store import Store
from benchsel.summary import summarize_run

MESSAGES = [{"role": "user", "content": "Extract"}]
QUICK = RequestOptions(num_predict=16, timeout_s=1.5)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(trickle_s=0.2) as fault_server:
        yield fault_server


@pytest.fixture(scope="module")
def evalset() -> EvalSet:
    return load_evalset("extraction-v1")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- replies of any shape are kept and scored ------------------------------------------------------


def test_reply_text_keeps_every_shape() -> None:
    assert reply_text(None) == ""
    assert json.loads(reply_text({"a": [1]})) == {"a": [1]}
    assert reply_text(42) == "42"
    assert reply_text("x\ud800y") == "x\ufffdy"  # a lone surrogate is marked, the rest kept
    assert storable_text("\ud83d" + "\ude00") == "\U0001f600"  # a split pair is joined, not lost


@pytest.mark.parametrize("mode", ["object", "list", "number", "surrogate"])
def test_openai_odd_content_is_stored_and_scored(
    server: FaultServer, evalset: EvalSet, tmp_path: Path, mode: str
) -> None:
    backend = OpenAIBackend(f"{server.url}/{mode}/v1", api_key_env="")
    spec = RunSpec(models=("m",), evalset=evalset, options=RequestOptions(num_predict=16), limit=2)
    with Store(tmp_path / "runs.sqlite") as store:
        record = runner.run(spec, backend, store)
        results = store.results(record.id)
        summary = summarize_run(store, record.id)
    assert record.status == "complete"
    assert len(results) == 2 and all(r.ok and r.reply is not None for r in results)
    content = results[0].reply.content if results[0].reply else ""
    if mode == "object":
        assert json.loads(content) == GOOD_OUTPUT
        assert summary.models[0].score.replies == 2  # scored as the model's output
    if mode == "number":
        assert content == "42"
    if mode == "surrogate":
        assert content.startswith("\ufffd ") and json.loads(content[2:]) == GOOD_OUTPUT


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("object", json.dumps(GOOD_OUTPUT)),
        ("number", "42"),
        ("split-pair", "\U0001f600"),
        ("surrogate", "\ufffd " + json.dumps(GOOD_OUTPUT)),
    ],
)
def test_ollama_odd_content_is_kept(server: FaultServer, mode: str, expected: str) -> None:
    server.ollama_mode = mode
    backend = OllamaBackend(server.url)
    reply = backend.chat("m", MESSAGES, QUICK)
    backend.close()
    assert reply.content == expected
    assert reply.eval_count == 0 and reply.eval_duration_ns == 1_000_000  # "lots" is not a count


# --- one limit on the whole request ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["trickle", "endless", "silent"])
def test_timeout_bounds_the_whole_request_openai(server: FaultServer, mode: str) -> None:
    backend = OpenAIBackend(f"{server.url}/{mode}/v1", api_key_env="")
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="--timeout"):
        backend.chat("m", MESSAGES, QUICK)
    assert QUICK.timeout_s <= time.monotonic() - started < QUICK.timeout_s + 1.5
    backend.close()


@pytest.mark.parametrize("mode", ["trickle", "endless"])
def test_timeout_bounds_the_whole_request_ollama(server: FaultServer, mode: str) -> None:
    server.ollama_mode = mode
    backend = OllamaBackend(server.url)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        backend.chat("m", MESSAGES, QUICK)
    assert time.monotonic() - started < QUICK.timeout_s + 1.5
    backend.close()


def test_abort_ends_a_request_in_flight_at_once(server: FaultServer) -> None:
    backend = OpenAIBackend(f"{server.url}/silent/v1", api_key_env="")
    threading.Timer(0.3, backend.abort).start()
    started = time.monotonic()
    with pytest.raises(RequestAborted):
        backend.chat("m", MESSAGES, RequestOptions(timeout_s=60))
    assert time.monotonic() - started < 3
    backend.close()


# --- error classes: only transport and HTTP faults are transport faults ----------------------------


def test_a_bug_inside_the_ollama_backend_raises_once_and_is_not_retried(
    server: FaultServer, evalset: EvalSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    def broken(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("benchsel.backends.ollama._collect", broken)
    backend = OllamaBackend(server.url)
    with pytest.raises(ZeroDivisionError):
        backend.chat("m", MESSAGES, QUICK)
    assert calls == 1
    backend.close()


def test_html_error_page_is_one_short_line(server: FaultServer) -> None:
    backend = OpenAIBackend(f"{server.url}/html501/v1", api_key_env="")
    with pytest.raises(ServerFailed) as caught:
        backend.chat("m", MESSAGES, QUICK)
    message = str(caught.value)
    assert "501 Not Implemented" in message and "<" not in message and len(message) < 300
    assert short_body("<html><body><p>a &amp; b</p></body></html>", "text/html") == "a & b"


# --- hosts and URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["http://[::1", "http://127.0.0.1:99999", ":::garbage::::", "ht!tp://%%%"])
def test_malformed_ollama_host_is_a_usage_error(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="--host"):
        resolve_host(host)
    monkeypatch.setenv("OLLAMA_HOST", host)
    with pytest.raises(UsageError, match="OLLAMA_HOST .*unset OLLAMA_HOST"):
        make_backend("auto")  # the default backend checks it too, before probing


def test_good_hosts_still_resolve() -> None:
    assert resolve_host("[::1]:8080") == "http://[::1]:8080"
    assert resolve_host("localhost") == "http://localhost:11434"


@pytest.mark.parametrize("url", ["not-a-url", "ftp://127.0.0.1/v1", "http://:8080/v1", "http://h:70000/v1"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(UsageError, match="--base-url"):
        OpenAIBackend(url)
    with pytest.raises(UsageError, match="--base-url"):
        make_backend("openai", base_url=url)


def test_a_server_that_is_not_ollama_is_not_model_not_pulled() -> None:
    with FaultServer(not_ollama=True) as web:
        backend = OllamaBackend(web.url)
        with pytest.raises(BackendUnavailable, match="is not Ollama"):
            backend.describe("gemma3:4b")
        with pytest.raises(BackendUnavailable, match="is not Ollama"):
            backend.chat("gemma3:4b", MESSAGES, QUICK)
        backend.close()


def test_auto_without_ollama_says_what_was_tried_where_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("OLLAMA_HOST", url)
    backend = make_backend("auto")
    assert isinstance(backend, LlamaCppBackend)
    with pytest.raises(ModelNotFound) as caught:
        backend.describe("gemma3:4b")
    message = str(caught.value)
    assert f"no Ollama answers at {url}" in message
    assert "ollama serve" in message and "OLLAMA_HOST" in message and ".gguf" in message
    with FaultServer(not_ollama=True) as web:
        monkeypatch.setenv("OLLAMA_HOST", web.url)
        with pytest.raises(ModelNotFound, match="is not Ollama"):
            make_backend("auto").describe("gemma3:4b")


@pytest.mark.parametrize("host", ["http://[::1", "http://127.0.0.1:99999", ":::garbage::::"])
def test_malformed_ollama_host_in_a_fresh_process_is_one_line(host: str) -> None:
    """The ollama package reads OLLAMA_HOST as it is imported: benchsel checks it before that."""
    env = {**os.environ, "OLLAMA_HOST": host, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for args in (["models", "--backend", "ollama"], ["run", "--models", "smollm2:135m", "--limit", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "benchsel", *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"Error: OLLAMA_HOST '{host}' is not a valid URL (")
        assert "unset OLLAMA_HOST" in done.stderr
