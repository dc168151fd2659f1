"""The run store: one SQLite file (WAL) holding runs, model snapshots and every raw reply.

The schema grows by named migrations applied in order and recorded in the ``_migrations`` table.
Every result carries a cache key, so re-running a command sends only what is missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchsel.backends.base import Memory, ModelSnapshot, Reply
from benchsel.errors import StoreError, UsageError

DEFAULT_DB = Path("reports") / "benchsel.sqlite"


def default_db_path() -> Path:
    return Path(os.environ.get("BENCHSEL_DB", DEFAULT_DB))


# ---- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    id: str
    run_key: str
    created_at: str
    evalset_name: str
    evalset_hash: str
    evalset_path: str
    backend: str
    host: str
    models: tuple[str, ...]
    repeats: int
    options: dict[str, Any]
    benchsel_version: str
    status: str = "running"
    hardware: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredModel:
    run_id: str
    name: str
    backend: str
    snapshot: ModelSnapshot
    load_s: float | None
    memory: Memory | None


@dataclass(frozen=True)
class StoredResult:
    run_id: str
    model: str
    case_id: str
    repeat: int
    cache_key: str
    reply: Reply | None
    error_kind: str | None = None
    error_message: str | None = None
    cached_from: str | None = None

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.error_kind is None


# ---- migrations ---------------------------------------------------------------------------------


def _script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the migration's transaction first; run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            run_key TEXT NOT NULL,
            created_at TEXT NOT NULL,
            evalset_name TEXT NOT NULL,
            evalset_hash TEXT NOT NULL,
            evalset_path TEXT NOT NULL,
            backend TEXT NOT NULL,
            host TEXT NOT NULL,
            models_json TEXT NOT NULL,
            repeats INTEGER NOT NULL,
            options_json TEXT NOT NULL,
            benchsel_version TEXT NOT NULL,
            status TEXT NOT NULL
        );
        CREATE INDEX runs_by_key ON runs (run_key, created_at);
        CREATE TABLE models (
            run_id TEXT NOT NULL REFERENCES runs (id),
            name TEXT NOT NULL,
            backend TEXT NOT NULL,
            digest TEXT NOT NULL,
            snapshot_json TEXT NOT NULL,
            load_s REAL,
            memory_json TEXT,
            PRIMARY KEY (run_id, name)
        );
        CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id),
            model TEXT NOT NULL,
            case_id TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            cache_key TEXT NOT NULL,
            content TEXT,
            thinking TEXT,
            done_reason TEXT,
            prompt_eval_count INTEGER,
            prompt_eval_duration_ns INTEGER,
            eval_count INTEGER,
            eval_duration_ns INTEGER,
            load_duration_ns INTEGER,
            total_duration_ns INTEGER,
            wall_s REAL,
            timing_source TEXT,
            error_kind TEXT,
            error_message TEXT,
            cached_from TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX results_by_run ON results (run_id, model, case_id, repeat);
        CREATE INDEX results_by_key ON results (cache_key);
        """,
    )


def _m002_run_hardware(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE runs ADD COLUMN hardware_json TEXT NOT NULL DEFAULT '{}'")


def _m005_probes(db: sqlite3.Connection) -> None:
    """Measured-trainability probes of a run (benchsel.probe): one row per probe, one per probed model."""
    _script(
        db,
        """
        CREATE TABLE probes (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id),
            method TEXT NOT NULL,
            created_at TEXT NOT NULL,
            settings_json TEXT NOT NULL,
            split_json TEXT NOT NULL
        );
        CREATE INDEX probes_by_run ON probes (run_id, created_at);
        CREATE TABLE probe_models (
            probe_id TEXT NOT NULL REFERENCES probes (id),
            model TEXT NOT NULL,
            figures_json TEXT NOT NULL,
            PRIMARY KEY (probe_id, model)
        );
        """,
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("001_initial", _m001_initial),
    ("002_run_hardware", _m002_run_hardware),
    ("005_probes", _m005_probes),
]

_REPLY_COLUMNS = (
    "content",
    "thinking",
    "done_reason",
    "prompt_eval_count",
    "prompt_eval_duration_ns",
    "eval_count",
    "eval_duration_ns",
    "load_duration_ns",
    "total_duration_ns",
    "wall_s",
    "timing_source",
)


@dataclass(frozen=True)
class StoredProbe:
    """One probe of a run; ``settings``, ``split`` and each model's figures are benchsel.probe's JSON."""

    id: str
    run_id: str
    method: str
    created_at: str
    settings: dict[str, Any]
    split: dict[str, Any]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """A SQLite run store. Safe to share between the runner's threads (one connection, one lock)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run store at {self.path}: {exc} - pass --db PATH") from None
        self._lock = threading.Lock()
        self.migrate()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; returns the names applied."""
        self._db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        done = {row[0] for row in self._db.execute("SELECT name FROM _migrations")}
        applied = []
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            with self._tx() as db:
                migration(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, _now()))
            applied.append(name)
        return applied

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM _migrations ORDER BY name")]

    # ---- runs -----------------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> RunRecord:
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, run_key, created_at, evalset_name, evalset_hash, evalset_path,"
                " backend, host, models_json, repeats, options_json, benchsel_version, status, hardware_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id,
                    run.run_key,
                    run.created_at,
                    run.evalset_name,
                    run.evalset_hash,
                    run.evalset_path,
                    run.backend,
                    run.host,
                    json.dumps(list(run.models)),
                    run.repeats,
                    json.dumps(run.options, sort_keys=True),
                    run.benchsel_version,
                    run.status,
                    json.dumps(run.hardware, sort_keys=True),
                ),
            )
        return run

    def set_status(self, run_id: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    def latest_run_with_key(self, run_key: str) -> RunRecord | None:
        row = self._db.execute(
            "SELECT * FROM runs WHERE run_key = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (run_key,)
        ).fetchone()
        return _run(row) if row else None

    def run(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique prefix of it, or 'latest'."""
        if run_id == "latest":
            row = self._db.execute(
                "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise UsageError(f"no runs in {self.path} yet - start one with `benchsel run --models ...`")
            return _run(row)
        rows = self._db.execute("SELECT * FROM runs WHERE id LIKE ? || '%'", (run_id,)).fetchall()
        if len(rows) == 1:
            return _run(rows[0])
        if not rows:
            raise UsageError(f"no run '{run_id}' in {self.path} - `benchsel runs` lists them")
        raise UsageError(f"run id '{run_id}' is ambiguous ({len(rows)} runs start with it) - give more of it")

    def runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_run(row) for row in rows]

    # ---- models ---------------------------------------------------------------------------------

    def save_model(
        self,
        run_id: str,
        snapshot: ModelSnapshot,
        *,
        load_s: float | None = None,
        memory: Memory | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO models (run_id, name, backend, digest, snapshot_json, load_s, memory_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET"
                " backend = excluded.backend, digest = excluded.digest,"
                " snapshot_json = excluded.snapshot_json,"
                " load_s = COALESCE(excluded.load_s, models.load_s),"
                " memory_json = COALESCE(excluded.memory_json, models.memory_json)",
                (
                    run_id,
                    snapshot.name,
                    snapshot.backend,
                    snapshot.digest,
                    json.dumps(asdict(snapshot), sort_keys=True, default=str),
                    load_s,
                    json.dumps(asdict(memory)) if memory else None,
                ),
            )

    def models(self, run_id: str) -> list[StoredModel]:
        rows = self._db.execute("SELECT * FROM models WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return [_model(row) for row in rows]

    # ---- results --------------------------------------------------------------------------------

    def add_result(self, result: StoredResult) -> None:
        reply = result.reply
        values = [getattr(reply, column) if reply else None for column in _REPLY_COLUMNS]
        with self._tx() as db:
            db.execute(
                "INSERT INTO results (run_id, model, case_id, repeat, cache_key, "
                + ", ".join(_REPLY_COLUMNS)
                + ", error_kind, error_message, cached_from, created_at) VALUES ("
                + ", ".join("?" * (len(_REPLY_COLUMNS) + 9))
                + ")",
                (
                    result.run_id,
                    result.model,
                    result.case_id,
                    result.repeat,
                    result.cache_key,
                    *values,
                    result.error_kind,
                    result.error_message,
                    result.cached_from,
                    _now(),
                ),
            )

    def results(
        self, run_id: str, model: str | None = None, *, latest_only: bool = True
    ) -> list[StoredResult]:
        """Results of a run in insertion order. With ``latest_only``, a case answered again after an
        error keeps only its newest row."""
        query = "SELECT * FROM results WHERE run_id = ?"
        params: list[Any] = [run_id]
        if model is not None:
            query += " AND model = ?"
            params.append(model)
        rows = [_result(row) for row in self._db.execute(query + " ORDER BY id", params)]
        if not latest_only:
            return rows
        newest: dict[tuple[str, str, int], StoredResult] = {}
        for row in rows:
            newest[(row.model, row.case_id, row.repeat)] = row
        return list(newest.values())

    def result_counts(self, run_id: str) -> tuple[int, int]:
        """(answered, failed) over the newest row of each model x case x repeat, without loading them."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(error_kind IS NOT NULL OR content IS NULL), 0) FROM results"
            " WHERE id IN (SELECT MAX(id) FROM results WHERE run_id = ? GROUP BY model, case_id, repeat)",
            (run_id,),
        ).fetchone()
        return row[0] - row[1], row[1]

    def answered_keys(self, run_id: str) -> set[str]:
        """Cache keys this run already holds a good answer for."""
        rows = self._db.execute(
            "SELECT cache_key FROM results WHERE run_id = ? AND error_kind IS NULL", (run_id,)
        )
        return {row[0] for row in rows}

    def cached(self, cache_key: str) -> StoredResult | None:
        """The newest good answer to the same request in any run."""
        row = self._db.execute(
            "SELECT * FROM results WHERE cache_key = ? AND error_kind IS NULL ORDER BY id DESC LIMIT 1",
            (cache_key,),
        ).fetchone()
        return _result(row) if row else None

    # ---- probes ---------------------------------------------------------------------------------

    def save_probe(self, probe: StoredProbe) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO probes (id, run_id, method, created_at, settings_json, split_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    probe.id,
                    probe.run_id,
                    probe.method,
                    probe.created_at,
                    json.dumps(probe.settings, sort_keys=True),
                    json.dumps(probe.split, sort_keys=True),
                ),
            )

    def save_probe_model(self, probe_id: str, model: str, figures: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO probe_models (probe_id, model, figures_json) VALUES (?, ?, ?)"
                " ON CONFLICT (probe_id, model) DO UPDATE SET figures_json = excluded.figures_json",
                (probe_id, model, json.dumps(figures, sort_keys=True)),
            )

    def latest_probe(self, run_id: str, method: str | None = None) -> StoredProbe | None:
        """The newest probe of a run (of ``method`` when given) with every model's figures."""
        query, params = "SELECT * FROM probes WHERE run_id = ?", [run_id]
        if method is not None:
            query += " AND method = ?"
            params.append(method)
        row = self._db.execute(query + " ORDER BY created_at DESC, rowid DESC LIMIT 1", params).fetchone()
        if row is None:
            return None
        models = {
            m["model"]: json.loads(m["figures_json"])
            for m in self._db.execute(
                "SELECT * FROM probe_models WHERE probe_id = ? ORDER BY rowid", (row["id"],)
            )
        }
        return StoredProbe(
            id=row["id"],
            run_id=row["run_id"],
            method=row["method"],
            created_at=row["created_at"],
            settings=json.loads(row["settings_json"]),
            split=json.loads(row["split_json"]),
            models=models,
        )


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        run_key=row["run_key"],
        created_at=row["created_at"],
        evalset_name=row["evalset_name"],
        evalset_hash=row["evalset_hash"],
        evalset_path=row["evalset_path"],
        backend=row["backend"],
        host=row["host"],
        models=tuple(json.loads(row["models_json"])),
        repeats=row["repeats"],
        options=json.loads(row["options_json"]),
        benchsel_version=row["benchsel_version"],
        status=row["status"],
        hardware=json.loads(row["hardware_json"]),
    )


def _model(row: sqlite3.Row) -> StoredModel:
    data = json.loads(row["snapshot_json"])
    data["capabilities"] = tuple(data.get("capabilities") or ())
    memory = json.loads(row["memory_json"]) if row["memory_json"] else None
    return StoredModel(
        run_id=row["run_id"],
        name=row["name"],
        backend=row["backend"],
        snapshot=ModelSnapshot(**data),
        load_s=row["load_s"],
        memory=Memory(**memory) if memory else None,
    )


def _result(row: sqlite3.Row) -> StoredResult:
    reply = None
    if row["content"] is not None:
        reply = Reply(**{column: row[column] for column in _REPLY_COLUMNS})
    return StoredResult(
        run_id=row["run_id"],
        model=row["model"],
        case_id=row["case_id"],
        repeat=row["repeat"],
        cache_key=row["cache_key"],
        reply=reply,
        error_kind=row["error_kind"],
        error_message=row["error_message"],
        cached_from=row["cached_from"],
    )
