"""The SQLite run store: migrations, runs, models, results, cache keys."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import run_record

from benchsel.contention import Contention
from benchsel.errors import UsageError
from benchsel.records import ColdPrefill, Memory, ModelSnapshot, Reply
from benchsel.store import MIGRATIONS, RunRecord, Store, StoredResult


def record(run_id: str, key: str = "k", created: str = "2026-11-23T10:00:00+00:00") -> RunRecord:
    return run_record(
        ("gemma3:4b", "gemma4:e2b"),
        run_id=run_id,
        run_key=key,
        created_at=created,
        host="http://127.0.0.1:11434",
        options={"num_ctx": 4096},
        hardware={"cpus": 2},
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "runs.sqlite")


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_migrations_are_recorded_in_order_and_pin_the_schema(store: Store) -> None:
    assert store.applied_migrations() == [name for name, _ in MIGRATIONS]
    assert columns(store.path, "runs") == [
        "id", "run_key", "created_at", "evalset_name", "evalset_hash", "evalset_path", "backend", "host",
        "models_json", "repeats", "options_json", "benchsel_version", "status", "hardware_json",
    ]  # fmt: skip
    assert columns(store.path, "models") == [
        "run_id", "name", "backend", "digest", "snapshot_json", "load_s", "memory_json",
        "cold_prefill_json", "contention_json", "host", "host_error",
    ]  # fmt: skip
    assert columns(store.path, "results") == [
        "id", "run_id", "model", "case_id", "repeat", "cache_key", "content", "thinking", "done_reason",
        "prompt_eval_count", "prompt_eval_duration_ns", "eval_count", "eval_duration_ns",
        "load_duration_ns", "total_duration_ns", "wall_s", "timing_source", "error_kind",
        "error_message", "cached_from", "created_at", "host",
    ]  # fmt: skip
    assert columns(store.path, "leases") == ["run_key", "run_id", "pid", "pid_started", "host", "started_at"]
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_applies_nothing_twice(store: Store) -> None:
    store.create_run(record("r1"))
    store.close()
    again = Store(store.path)
    assert again.migrate() == []
    assert again.run("r1").models == ("gemma3:4b", "gemma4:e2b")


def test_an_old_store_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        MIGRATIONS[0][1](db)
        db.execute("INSERT INTO _migrations VALUES ('001_initial', 'then')")
    store = Store(path)
    assert store.applied_migrations() == sorted(name for name, _ in MIGRATIONS)
    assert "hardware_json" in columns(path, "runs")


def test_the_hosts_migration_keeps_old_model_rows_and_pins_figures_per_host(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        for name, migration in MIGRATIONS[:2]:
            migration(db)
            db.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
        db.execute(
            "INSERT INTO models (run_id, name, backend, digest, snapshot_json, load_s) VALUES"
            " ('r1', 'gemma3:4b', 'ollama', 'sha256:a', ?, 2.5)",
            (json.dumps({"name": "gemma3:4b", "backend": "ollama", "digest": "sha256:a"}),),
        )
    store = Store(path)
    (old,) = store.models("r1")
    assert (old.name, old.host, old.load_s) == ("gemma3:4b", "", 2.5)
    snapshot = ModelSnapshot(name="gemma3:4b", backend="ollama", digest="sha256:a")
    store.save_model("r1", snapshot, load_s=1.0, memory=Memory(100, 100, "ps"), host="gpu1")
    store.save_model("r1", snapshot, load_s=3.0, memory=Memory(200, 200, "ps"), host="gpu2")
    store.set_host_error("r1", "gemma3:4b", "gpu2", "connection refused")
    figures = {
        m.host: (m.load_s, m.memory.size_bytes if m.memory else None, m.host_error)
        for m in store.models("r1")
    }
    assert figures == {
        "": (2.5, None, None),
        "gpu1": (1.0, 100, None),
        "gpu2": (3.0, 200, "connection refused"),
    }


def test_runs_resolve_by_prefix_latest_and_say_how_to_fix(store: Store) -> None:
    store.create_run(record("20261123-100000-aaaaaa", created="2026-11-23T10:00:00+00:00"))
    store.create_run(record("20261123-110000-bbbbbb", created="2026-11-23T11:00:00+00:00"))
    assert store.run("20261123-10").id == "20261123-100000-aaaaaa"
    assert store.run("latest").id == "20261123-110000-bbbbbb"
    with pytest.raises(UsageError, match="ambiguous"):
        store.run("20261123")
    with pytest.raises(UsageError, match="benchsel runs"):
        store.run("nope")
    assert [r.id for r in store.runs()] == ["20261123-110000-bbbbbb", "20261123-100000-aaaaaa"]


def test_model_snapshots_round_trip_and_keep_earlier_figures(store: Store) -> None:
    store.create_run(record("r1"))
    snapshot = ModelSnapshot(
        name="gemma3:4b",
        backend="ollama",
        digest="sha256:abc",
        family="gemma3",
        parameter_size="4.3B",
        capabilities=("completion", "vision"),
        model_info={"general.architecture": "gemma3", "gemma3.block_count": 34},
    )
    store.save_model("r1", snapshot, load_s=2.5)
    store.save_model("r1", snapshot, memory=Memory(5_000, 4_000, "ollama /api/ps"))
    [model] = store.models("r1")
    assert model.snapshot == snapshot
    assert model.load_s == 2.5  # not erased by the later save
    assert model.memory == Memory(5_000, 4_000, "ollama /api/ps")


def test_cold_prefill_and_contention_round_trip_and_keep_each_other(store: Store) -> None:
    store.create_run(record("r1"))
    store.save_model("r1", ModelSnapshot(name="m", backend="llamacpp", digest="d"))
    assert store.models("r1")[0].cold_prefill is None
    store.save_model_speed("r1", "m", cold_prefill=ColdPrefill(430, 1_500_000_000))
    contention = Contention(True, 12.0, 3.0, 2, 2, True, "busy")
    store.save_model_speed("r1", "m", contention=contention)
    [model] = store.models("r1")
    assert model.cold_prefill == ColdPrefill(430, 1_500_000_000)  # not erased by the later save
    assert model.contention == contention
    assert model.contention.other_cores == 0.25


def test_results_keep_every_field_and_the_newest_answer_per_case(store: Store) -> None:
    store.create_run(record("r1"))
    reply = Reply(
        content='{"entities": []}',
        thinking="hmm",
        done_reason="stop",
        prompt_eval_count=100,
        prompt_eval_duration_ns=2_000_000,
        eval_count=20,
        eval_duration_ns=400_000_000,
        load_duration_ns=5,
        total_duration_ns=500_000_000,
        wall_s=0.51,
    )
    failed = StoredResult("r1", "gemma3:4b", "c1", 0, "key-c1", None, "transport:timeout", "slow")
    store.add_result(failed)
    store.add_result(replace(failed, reply=reply, error_kind=None, error_message=None))
    assert [r.error_kind for r in store.results("r1", latest_only=False)] == ["transport:timeout", None]
    [latest] = store.results("r1")
    assert latest.reply == reply and latest.ok
    assert store.answered_keys("r1") == {"key-c1"}


def test_cache_finds_good_answers_from_any_run_only(store: Store) -> None:
    store.create_run(record("r1"))
    store.add_result(StoredResult("r1", "m", "c1", 0, "key-1", Reply(content="{}")))
    store.add_result(StoredResult("r1", "m", "c2", 0, "key-2", None, "transport:connection", "refused"))
    cached = store.cached("key-1")
    assert cached is not None and cached.run_id == "r1" and cached.reply == Reply(content="{}")
    assert store.cached("key-2") is None
    assert store.cached("key-3") is None


def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="--db .* is a file, not a folder"):
        Store(blocker / "runs.sqlite")


def test_latest_run_with_key(store: Store) -> None:
    store.create_run(record("a", key="k1", created="2026-11-23T10:00:00+00:00"))
    store.create_run(record("b", key="k1", created="2026-11-23T11:00:00+00:00"))
    store.set_status("b", "complete")
    latest = store.latest_run_with_key("k1")
    assert latest is not None and latest.id == "b" and latest.status == "complete"
    assert store.latest_run_with_key("other") is None
