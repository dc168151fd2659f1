"""The runner against real inference: the Ollama backend through the loopback server (faults injected
there), and the embedded llama.cpp engine killed mid-run and resumed."""

from __future__ import annotations

import collections
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ollama_loopback import FakeModel, FakeOllama

from benchsel import runner
from benchsel.backends.engine import LlamaServer
from benchsel.backends.llamacpp import LlamaCppBackend
from benchsel.backends.ollama import OllamaBackend
from benchsel.backends.openai import OpenAIBackend
from benchsel.evalset import EvalSet, load_evalset
from benchsel.records import RequestOptions
from benchsel.runner import RunAborted, RunSpec
from benchsel.store import Store
from benchsel.summary import summarize_run

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
# Generous timeouts: the machines running the suite are small and shared; a timeout here is a test
# of patience, not of the runner (the timeout test below sets its own).
OPTIONS = RequestOptions(num_ctx=4096, num_predict=32, timeout_s=300)


@pytest.fixture(scope="module")
def evalset() -> EvalSet:
    return load_evalset("extraction-v1")


@pytest.fixture
def fake(smollm2_path: Path, smollm2_server: Any) -> Iterator[FakeOllama]:
    with FakeOllama([FakeModel(MODEL, smollm2_path, smollm2_server)], unload_delay_s=0.05) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "runs.sqlite") as s:
        yield s


def after_load(fake: FakeOllama, kind: str, count: int, **kw: Any) -> Any:
    """An event callback that injects a fault once the model is loaded and its prompt prefix cached,
    so it hits the answers."""

    def on_event(event: runner.Event) -> None:
        if isinstance(event, runner.ModelWarmed):
            fake.inject(kind, count, **kw)  # type: ignore[arg-type]

    return on_event


WARM_UP = load_evalset("extraction-v1").prompt.messages("")  # prefix_cache's warm-up request


def chat_requests(fake: FakeOllama) -> list[dict[str, Any]]:
    """The case requests the server received (load and prompt-prefix warm-ups left out)."""
    return [
        body
        for path, body in fake.requests
        if path == "/api/chat"
        and body.get("messages")
        and body["messages"][-1].get("content") != WARM_UP[-1]["content"]
    ]


def spec(evalset: EvalSet, **kw: Any) -> RunSpec:
    fields: dict[str, Any] = {"models": (MODEL,), "evalset": evalset, "options": OPTIONS, "limit": 4}
    fields.update(kw)
    return RunSpec(**fields)


def test_run_stores_every_reply_with_server_timings(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    events: list[runner.Event] = []
    record = runner.run(spec(evalset, concurrency=2), backend, store, on_event=events.append)

    results = store.results(record.id)
    assert sorted(r.case_id for r in results) == sorted(c.id for c in evalset.cases[:4])
    assert all(r.ok and r.reply is not None and r.reply.eval_count > 0 for r in results)
    assert all(r.reply is not None and r.reply.timing_source == "server" for r in results)
    assert record.status == "complete"
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("ReplyStored") == 4
    [model] = store.models(record.id)
    assert model.snapshot.family == "llama" and model.load_s is not None
    assert model.memory is not None and model.memory.size_bytes > 0
    assert fake.loaded_models() == []  # unloaded before the next model could run
    options = {str(body["options"]) for body in chat_requests(fake)}
    assert len(options) == 1  # identical options for every request: no reloads
    summary = summarize_run(store, record.id)
    assert summary.models[0].score.replies == 4
    assert summary.models[0].speed.decode_tokens_per_s is not None


def test_rerun_sends_nothing_and_fresh_sends_all(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    first = runner.run(spec(evalset, limit=3), backend, store)
    sent = len(chat_requests(fake))
    events: list[runner.Event] = []
    second = runner.run(spec(evalset, limit=3), backend, store, on_event=events.append)
    assert second.id == first.id
    assert len(chat_requests(fake)) == sent
    assert isinstance(events[0], runner.RunStarted) and events[0].resumed
    third = runner.run(spec(evalset, limit=3, fresh=True), backend, store)
    assert third.id != first.id
    assert len(chat_requests(fake)) == sent + 3


def test_transient_faults_are_retried(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    fake.inject("status", 1, status=503)
    fake.inject("drop", 1)
    events: list[runner.Event] = []
    record = runner.run(spec(evalset, limit=2, backoff_s=0.01), backend, store, on_event=events.append)
    assert all(r.ok for r in store.results(record.id))
    retries = [e for e in events if isinstance(e, runner.Retrying)]
    assert len(retries) == 2  # the 503 hit the load request, the drop the first answer
    assert retries[0].case_id == "(load)"
    assert record.status == "complete"


def test_timeout_is_a_transport_error_not_an_answer(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    fast = RequestOptions(num_ctx=4096, num_predict=32, timeout_s=1.0)
    # the load waits this out (it has its own limit); both tries of the warm-up and of the case time out
    fake.inject("delay", 5, delay_s=2.5)
    record = runner.run(spec(evalset, limit=1, options=fast, retries=1, backoff_s=0.01), backend, store)
    [result] = store.results(record.id)
    assert result.error_kind == "transport:timeout" and result.reply is None
    summary = summarize_run(store, record.id)
    assert summary.models[0].score.errors == 1 and summary.models[0].score.replies == 0
    assert summary.models[0].error_kinds == {"transport:timeout": 1}
    assert record.status == "complete-with-errors"


def test_persistent_500_is_recorded_then_resent_on_rerun(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    record = runner.run(
        spec(evalset, limit=2, retries=1, backoff_s=0.01),
        backend,
        store,
        on_event=after_load(fake, "status", 2, status=500),
    )
    failed = [r for r in store.results(record.id) if not r.ok]
    assert len(failed) == 1 and failed[0].error_kind == "transport:server_error"
    assert "terminated" in (failed[0].error_message or "")
    again = runner.run(spec(evalset, limit=2, retries=1, backoff_s=0.01), backend, store)
    assert again.id == record.id and again.status == "complete"
    assert all(r.ok for r in store.results(record.id))


def test_stream_without_done_is_a_truncated_reply(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    record = runner.run(spec(evalset, limit=1), backend, store, on_event=after_load(fake, "no_done", 1))
    [result] = store.results(record.id)
    assert result.ok and result.reply is not None
    assert result.reply.done_reason == "incomplete" and result.reply.truncated
    assert summarize_run(store, record.id).models[0].speed.truncated == 1


def test_ctrl_c_keeps_what_arrived_and_a_rerun_finishes(
    fake: FakeOllama, backend: OllamaBackend, store: Store, evalset: EvalSet
) -> None:
    stored = 0

    def interrupt_after_two(event: runner.Event) -> None:
        nonlocal stored
        if isinstance(event, runner.ReplyStored):
            stored += 1
            if stored == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run(spec(evalset, limit=5), backend, store, on_event=interrupt_after_two)
    [record] = store.runs()
    assert record.status == "interrupted"
    assert len(store.results(record.id)) == 2
    sent_before = len(chat_requests(fake))
    finished = runner.run(spec(evalset, limit=5), backend, store)
    assert finished.id == record.id and finished.status == "complete"
    assert len(chat_requests(fake)) == sent_before + 3
    assert sorted(r.case_id for r in store.results(record.id)) == sorted(c.id for c in evalset.cases[:5])


class CountingBackend:
    """Wraps a real backend and counts the answers it delivered per case text."""

    def __init__(self, inner: OpenAIBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.answered: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    def chat(
        self, model: str, messages: list[dict[str, str]], options: RequestOptions, schema: Any = None
    ) -> Any:
        reply = self.inner.chat(model, messages, options, schema)
        with self._lock:
            self.answered[messages[-1]["content"]] += 1
        return reply


def test_killed_server_mid_run_resumes_with_every_case_answered_once(
    smollm2_path: Path, store: Store, evalset: EvalSet
) -> None:
    """SIGKILL the llama-server serving an OpenAI-compatible run; the run stops with everything kept,
    and the same command against a new server sends only what is missing."""
    run_spec = spec(evalset, limit=6, retries=1, backoff_s=0.01)
    stored = 0
    with LlamaServer(smollm2_path, ctx=4096) as doomed:
        first = CountingBackend(OpenAIBackend(doomed.base_url))

        def kill_after_two(event: runner.Event) -> None:
            nonlocal stored
            if isinstance(event, runner.ReplyStored) and event.error_kind is None:
                stored += 1
                if stored == 2:
                    os.kill(doomed.pid, signal.SIGKILL)

        with pytest.raises(RunAborted, match="re-run the same command to resume"):
            runner.run(run_spec, first, store, on_event=kill_after_two)
        first.close()
    [record] = store.runs()
    assert record.status == "interrupted"
    assert len([r for r in store.results(record.id) if r.ok]) == 2

    with LlamaServer(smollm2_path, ctx=4096) as revived:
        second = CountingBackend(OpenAIBackend(revived.base_url))
        finished = runner.run(run_spec, second, store)
        second.close()
    assert finished.id == record.id and finished.status == "complete"
    final = store.results(record.id)
    assert sorted(r.case_id for r in final) == sorted(c.id for c in evalset.cases[:6])
    assert all(r.ok for r in final)
    answered = first.answered + second.answered
    answered.pop(WARM_UP[-1]["content"])  # the prompt-prefix warm-ups
    assert sum(answered.values()) == 6 and set(answered.values()) == {1}


def test_embedded_engine_restarts_a_dead_server(store: Store, evalset: EvalSet) -> None:
    """The embedded engine, like Ollama with a crashed runner, starts the model again by itself."""
    backend = LlamaCppBackend(threads=2)
    killed = False

    def kill_once(event: runner.Event) -> None:
        nonlocal killed
        if isinstance(event, runner.ReplyStored) and not killed:
            killed = True
            server = backend.server(MODEL)
            assert server is not None
            os.kill(server.pid, signal.SIGKILL)

    try:
        record = runner.run(spec(evalset, limit=3, backoff_s=0.01), backend, store, on_event=kill_once)
    finally:
        backend.close()
    assert killed and record.status == "complete"
    assert all(r.ok for r in store.results(record.id))
    assert backend.server(MODEL) is None
