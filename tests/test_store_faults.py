"""The run store under faults: damaged, foreign, full, read-only, a mistyped --db, a second process on the
same command, a run whose process died; and output folders that cannot be written. Each is one clear
error naming the file and the fix, and nothing stored is lost."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_servers import FaultServer

from benchsel import runner
from benchsel.backends.openai import OpenAIBackend
from benchsel.errors import RunInProgress, StoreError, UsageError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.paths import prepare_output_dir
from benchsel.records import RequestOptions
from benchsel.runner import RunSpec
from benchsel.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evalset() -> EvalSet:
    return load_evalset("extraction-v1")


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


def spec(evalset: EvalSet, limit: int = 3) -> RunSpec:
    return RunSpec(
        models=("m",), evalset=evalset, options=RequestOptions(num_predict=16, timeout_s=30), limit=limit
    )


def one_run(path: Path, server: FaultServer, evalset: EvalSet, limit: int = 3) -> str:
    with Store(path) as store:
        return runner.run(
            spec(evalset, limit), OpenAIBackend(f"{server.url}/ok/v1", api_key_env=""), store
        ).id


def benchsel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "benchsel", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_damaged_store_names_the_file_and_the_recovery(
    tmp_path: Path, server: FaultServer, evalset: EvalSet
) -> None:
    path = tmp_path / "runs.sqlite"
    one_run(path, server, evalset)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    for page in range(1, len(data) // page_size):  # smash every b-tree page header but the first
        data[page * page_size : page * page_size + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    result = benchsel("runs", "--db", str(path))
    assert_one_line(result, 1, str(path), "damaged", ".recover")
    assert path.read_bytes() == bytes(data)  # left untouched


def test_a_sqlite_file_that_is_not_a_store_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (x)")
    before = path.read_bytes()
    with pytest.raises(UsageError, match="not a benchsel run store .*tables runs"):
        Store(path)
    assert_one_line(benchsel("runs", "--db", str(path)), 2, str(path), "not a benchsel run store")
    assert path.read_bytes() == before


def test_a_full_disk_mid_run_keeps_every_reply_and_resumes(
    tmp_path: Path, server: FaultServer, evalset: EvalSet
) -> None:
    """SQLite's max_page_count makes the database "full" exactly as a full disk does (SQLITE_FULL)."""
    path = tmp_path / "runs.sqlite"
    backend = OpenAIBackend(f"{server.url}/big/v1", api_key_env="")
    with Store(path) as store:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages + 8}")  # room for a few 4 kB replies
        with pytest.raises(StoreError, match="disk is full .*re-run the same command"):
            runner.run(spec(evalset, 24), backend, store)
        [record] = store.runs()
        kept = len(store.results(record.id))
        assert record.status == "interrupted" and 1 <= kept < 24
    with Store(path) as store:  # space again: the same command resumes the same run
        finished = runner.run(spec(evalset, 24), backend, store)
        assert finished.id == record.id and finished.status == "complete"
        assert len(store.results(record.id)) == 24


def test_a_read_only_store_lists_and_says_how_to_write(
    tmp_path: Path, server: FaultServer, evalset: EvalSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runs.sqlite"
    run_id = one_run(path, server, evalset)
    # a read-only mount as os.access reports it (root ignores chmod, so the test cannot mount one)
    monkeypatch.setattr("benchsel.store._writable", lambda p: False)
    with Store(path) as store:
        assert store.read_only
        assert [r.id for r in store.runs()] == [run_id]
        assert len(store.results(run_id)) == 3
        with pytest.raises(StoreError, match=f"cannot be written .*cp {path} .*--db"):
            store.set_status(run_id, "complete")


def test_a_mistyped_db_creates_no_tree(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UsageError, match="neither .* exists - check the path"):
        Store(tmp_path / "typo" / "deeper" / "runs.sqlite")
    assert not (tmp_path / "typo").exists()
    with caplog.at_level(logging.WARNING, logger="benchsel"):
        Store(tmp_path / "reports" / "runs.sqlite").close()
    assert (tmp_path / "reports" / "runs.sqlite").is_file()
    assert "created the folder" in caplog.text
    assert_one_line(benchsel("runs", "--db", str(tmp_path / "a" / "b" / "x.sqlite")), 2, "mkdir -p")


def test_output_folders_that_cannot_be_written_are_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "hostname"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        prepare_output_dir(a_file / "run")
    with pytest.raises(UsageError, match="cannot create it"):
        prepare_output_dir("/proc/benchsel-report")
    assert prepare_output_dir(tmp_path / "new" / "run").is_dir()


def test_a_second_process_on_the_same_command_is_refused(
    tmp_path: Path, server: FaultServer, evalset: EvalSet
) -> None:
    path = tmp_path / "runs.sqlite"
    run_id = one_run(path, server, evalset, limit=1)
    with Store(path) as store:
        record = store.run(run_id)
        with store._tx() as db:  # a live process (this test's parent shell) holds the command
            db.execute(
                "INSERT INTO leases VALUES (?, ?, ?, NULL, ?, '2026-01-01T00:00:00+00:00')",
                (record.run_key, run_id, os.getppid(), socket.gethostname()),
            )
        with pytest.raises(RunInProgress, match=f"process {os.getppid()} .*wait for it to finish"):
            runner.run(spec(evalset, 1), OpenAIBackend(f"{server.url}/ok/v1", api_key_env=""), store)


def test_a_run_whose_process_died_is_interrupted_and_resumes(
    tmp_path: Path, server: FaultServer, evalset: EvalSet
) -> None:
    path = tmp_path / "runs.sqlite"
    run_id = one_run(path, server, evalset, limit=2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store(path) as store:
        record = store.run(run_id)
        with store._tx() as db:  # what kill -9 leaves: status running, a lease of a dead pid
            db.execute("UPDATE runs SET status = 'running'")
            db.execute(
                "INSERT INTO leases VALUES (?, ?, ?, NULL, ?, '2026-01-01T00:00:00+00:00')",
                (record.run_key, run_id, dead.pid, socket.gethostname()),
            )
        assert [r.status for r in store.runs()] == ["interrupted"]
        resumed = runner.run(spec(evalset, 2), OpenAIBackend(f"{server.url}/ok/v1", api_key_env=""), store)
    assert resumed.id == run_id and resumed.status == "complete"
