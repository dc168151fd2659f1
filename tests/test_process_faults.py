"""`benchsel run` as a real process, killed and interrupted the ways people and machines do it: kill -9,
SIGTERM, Ctrl-C (SIGINT to the whole process group), and a second process on the same command. The engine
never outlives benchsel, no stored reply is lost, and the same command resumes the run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_servers import FaultServer, wait_until
from helpers import engine_pids, pid_alive

ROOT = Path(__file__).resolve().parents[1]
# 12 cases of up to 96 tokens: a signal sent after the second reply always meets a running run
ENGINE_RUN = ("--backend", "llamacpp", "--models", "smollm2:135m", "--limit", "12", "--num-predict", "96")
CASES = 12


def start(db: Path, *args: str) -> subprocess.Popen[str]:
    """benchsel in its own process group, as a shell starts a foreground job."""
    command = [
        sys.executable,
        "-m",
        "benchsel",
        "run",
        "--no-report",
        "--threads",
        "2",
        "--db",
        str(db),
        *args,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        # as in a terminal: a shell's background job (CI under `cmd &`) inherits SIGINT ignored, and a
        # Python started that way never turns Ctrl-C into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return list(connection.execute(query))
    except sqlite3.Error:
        return []


def replies(db: Path) -> int:
    found = rows(db, "SELECT COUNT(*) FROM results WHERE error_kind IS NULL")
    return int(found[0][0]) if found else 0  # type: ignore[call-overload]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    """A benchsel run on the embedded engine that has stored two replies; yields it with its engine pid."""
    db = tmp_path / "runs.sqlite"
    process = start(db, *ENGINE_RUN)
    try:
        assert wait_until(lambda: replies(db) >= 2, 240), process.stderr.read() if process.poll() else ""
        [engine] = engine_pids(process.pid)
        yield process, db, engine
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def resume_finishes(db: Path) -> str:
    again = start(db, *ENGINE_RUN)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "resuming" in out
    [(answered, distinct)] = rows(
        db, "SELECT COUNT(*), COUNT(DISTINCT case_id) FROM results WHERE error_kind IS NULL"
    )
    assert answered == distinct == CASES  # every case answered exactly once
    return out


@pytest.mark.integration
def test_kill_9_leaves_no_engine_and_the_run_resumes(
    running: tuple[subprocess.Popen[str], Path, int],
) -> None:
    process, db, engine = running
    kept = replies(db)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert wait_until(lambda: not pid_alive(engine), 5), f"llama-server {engine} outlived benchsel"
    assert replies(db) >= kept
    listing = subprocess.run(
        [sys.executable, "-m", "benchsel", "runs", "--db", str(db)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert "interrupted" in listing.stdout and "running" not in listing.stdout
    resume_finishes(db)


@pytest.mark.integration
def test_sigterm_stops_the_run_and_the_engine(running: tuple[subprocess.Popen[str], Path, int]) -> None:
    process, db, engine = running
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 130 and "Traceback" not in err
    assert not pid_alive(engine)
    assert rows(db, "SELECT status FROM runs") == [("interrupted",)]


@pytest.mark.integration
def test_ctrl_c_to_the_process_group_ends_within_seconds(
    running: tuple[subprocess.Popen[str], Path, int],
) -> None:
    """A terminal's Ctrl-C: SIGINT to benchsel's whole process group (the engine has its own)."""
    process, db, engine = running
    kept = replies(db)
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=30)
    # about 2 s on a quiet machine; the bound is loose for a loaded CI box (the hang it guards against
    # lasted minutes)
    assert time.monotonic() - started < 20
    assert process.returncode == 130 and "Traceback" not in err
    assert not pid_alive(engine)
    assert replies(db) >= kept
    assert rows(db, "SELECT status FROM runs") == [("interrupted",)]


def test_a_second_run_of_the_same_command_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    with FaultServer() as server:
        server.openai_mode = "silent"  # the first run waits on its first request
        command = ("--backend", "openai", "--base-url", f"{server.url}/v1", "--models", "m", "--limit", "2")
        first = start(db, *command, "--timeout", "120")
        try:
            assert wait_until(lambda: bool(rows(db, "SELECT pid FROM leases WHERE run_id IS NOT NULL")), 60)
            second = start(db, *command, "--timeout", "120")
            _, err = second.communicate(timeout=60)
            assert second.returncode == 1 and "Traceback" not in err
            assert f"already running in process {first.pid}" in err
            assert len(err.strip().splitlines()) == 1
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
            first.communicate(timeout=30)
        server.openai_mode = "ok"
        again = start(db, *command, "--timeout", "120")
        out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "resuming" in out
    assert rows(db, "SELECT COUNT(*) FROM results WHERE error_kind IS NULL") == [(2,)]
