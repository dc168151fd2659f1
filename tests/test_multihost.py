"""Several hosts in one run, against three real llama-servers on loopback; one is killed mid-run and its
cases move to another host, resumed from the store, each answered once."""

from __future__ import annotations

import collections
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchsel import runner
from benchsel.backends.engine import LlamaServer
from benchsel.evalset import load_evalset
from benchsel.hosts import parse_host
from benchsel.multihost import HostFailed, run_on_hosts
from benchsel.records import RequestOptions
from benchsel.report.view import thinking_notes
from benchsel.store import Store
from benchsel.summary import summarize_run

pytestmark = pytest.mark.integration

OPTIONS = RequestOptions(num_ctx=2048, num_predict=24, timeout_s=120)
CASES = 4


@pytest.fixture
def servers(smollm2_path: Path) -> Iterator[list[LlamaServer]]:
    started = [LlamaServer(smollm2_path, ctx=2048, slots=1, threads=1) for _ in range(3)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()


def test_three_hosts_one_killed_mid_run_every_case_answered_once(
    servers: list[LlamaServer], tmp_path: Path
) -> None:
    hosts = [parse_host(f"h{i}=openai:{server.base_url}") for i, server in enumerate(servers, 1)]
    # the three servers hold the same GGUF; three names make three models with their own cache keys
    models = ("smollm2-a", "smollm2-b@h2", "smollm2-c")
    spec = runner.RunSpec(
        models=models,
        evalset=load_evalset("extraction-v1"),
        options=OPTIONS,
        limit=CASES,
        retries=1,
        backoff_s=0.1,
    )
    events: list[runner.Event | HostFailed] = []
    killed: list[str] = []

    def on_event(event: runner.Event | HostFailed) -> None:
        events.append(event)
        if isinstance(event, runner.ReplyStored) and event.model == "smollm2-b" and not killed:
            os.kill(servers[1].pid, signal.SIGKILL)  # h2 dies after its first answer
            killed.append(event.case_id)

    with Store(tmp_path / "runs.sqlite") as store:
        record = run_on_hosts(spec, hosts, store, on_event=on_event)
        rows = store.results(record.id, latest_only=False)
        summary = summarize_run(store, record.id)

    assert record.status == "complete"
    good = collections.Counter((r.model, r.case_id) for r in rows if r.ok)
    assert set(good.values()) == {1} and len(good) == 3 * CASES  # each case answered exactly once
    served = {(r.model, r.host) for r in rows if r.ok}
    assert {host for model, host in served if model == "smollm2-a"} == {"h1"}
    assert {host for model, host in served if model == "smollm2-c"} == {"h3"}
    assert {host for model, host in served if model == "smollm2-b"} == {"h2", "h1"}  # moved to h1
    (failed,) = [e for e in events if isinstance(e, HostFailed)]
    assert (failed.host, failed.model, failed.moved_to) == ("h2", "smollm2-b", "h1")

    moved = summary.model("smollm2-b")
    by_host = {figures.host: figures for figures in moved.hosts}
    assert by_host["h2"].replies == 1 and by_host["h1"].replies == CASES - 1
    assert by_host["h2"].error and by_host["h1"].error is None
    assert moved.host == "h1" and moved.speed.replies == CASES - 1  # h1's figures, not an average
    assert summary.model("smollm2-a").host == "h1" and summary.model("smollm2-a").hosts == ()
    note = next(line for line in thinking_notes(summary) if line.startswith("smollm2-b ran on"))
    assert "h2 (1 replies" in note and "failed:" in note and "then h1 (3 replies" in note
