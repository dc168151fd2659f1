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

from benchsel.contention import Contention
from benchsel.errors import StoreError, UsageError
from benchsel.records import ColdPrefill, Memory, ModelSnapshot, Reply

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
    cold_prefill: ColdPrefill | None = None
    contention: Contention | None = None
    host: str = ""  # figures are pinned to the (model, host) pair
    host_error: str | None = None  # why this host stopped serving the model mid-run


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
    host: str = ""  # the inference host that answered, in a multi-host run

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


def _m004_model_speed(db: sqlite3.Connection) -> None:
    # per model: the cold prefill of the warm-up prompt, and the CPU other processes used meanwhile
    db.execute("ALTER TABLE models ADD COLUMN cold_prefill_json TEXT")
    db.execute("ALTER TABLE models ADD COLUMN contention_json TEXT")


def _m006_hosts(db: sqlite3.Connection) -> None:
    """A host on every reply, and one models row per (model, host): a model measured on two hosts keeps
    two sets of figures. SQLite cannot change a primary key in place, so the models table is rebuilt
    with whatever columns earlier migrations gave it."""
    db.execute("ALTER TABLE results ADD COLUMN host TEXT NOT NULL DEFAULT ''")
    columns = db.execute("PRAGMA table_info(models)").fetchall()
    names = [column[1] for column in columns]
    definitions = [
        f"{name} {kind}{' NOT NULL' if notnull else ''}{f' DEFAULT {default}' if default is not None else ''}"
        for _, name, kind, notnull, default, _ in columns
    ]
    definitions += ["host TEXT NOT NULL DEFAULT ''", "host_error TEXT", "PRIMARY KEY (run_id, name, host)"]
    listed = ", ".join(names)
    db.execute(f"CREATE TABLE models_by_host ({', '.join(definitions)})")
    db.execute(f"INSERT INTO models_by_host ({listed}) SELECT {listed} FROM models ORDER BY rowid")
    db.execute("DROP TABLE models")
    db.execute("ALTER TABLE models_by_host RENAME TO models")


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("001_initial", _m001_initial),
    ("002_run_hardware", _m002_run_hardware),
    ("004_model_speed", _m004_model_speed),
    ("006_hosts", _m006_hosts),
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
        host: str = "",
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO models (run_id, name, backend, digest, snapshot_json, load_s, memory_json, host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name, host) DO UPDATE SET"
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
                    host,
                ),
            )

    def save_model_speed(
        self,
        run_id: str,
        name: str,
        *,
        cold_prefill: ColdPrefill | None = None,
        contention: Contention | None = None,
    ) -> None:
        """Record a model's cold prefill and the contention during its run (each kept when not given)."""
        with self._tx() as db:
            db.execute(
                "UPDATE models SET cold_prefill_json = COALESCE(?, cold_prefill_json),"
                " contention_json = COALESCE(?, contention_json) WHERE run_id = ? AND name = ?",
                (
                    json.dumps(asdict(cold_prefill)) if cold_prefill else None,
                    json.dumps(asdict(contention)) if contention else None,
                    run_id,
                    name,
                ),
            )

    def set_host_error(self, run_id: str, model: str, host: str, error: str) -> None:
        """Record why ``host`` stopped serving ``model`` (its cases moved to another host)."""
        with self._tx() as db:
            db.execute(
                "UPDATE models SET host_error = ? WHERE run_id = ? AND name = ? AND host = ?",
                (error[:500], run_id, model, host),
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
                + ", error_kind, error_message, cached_from, created_at, host) VALUES ("
                + ", ".join("?" * (len(_REPLY_COLUMNS) + 10))
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
                    result.host,
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
        cold_prefill=ColdPrefill(**json.loads(row["cold_prefill_json"]))
        if row["cold_prefill_json"]
        else None,
        contention=Contention(**json.loads(row["contention_json"])) if row["contention_json"] else None,
        host=row["host"],
        host_error=row["host_error"],
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
        host=row["host"],
    )
