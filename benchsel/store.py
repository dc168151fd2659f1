"""The run store: one SQLite file (WAL) holding runs, model snapshots and every raw reply.

The schema grows by named migrations applied in order and recorded in the ``_migrations`` table.
Every result carries a cache key, so re-running a command sends only what is missing.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

from benchsel.contention import Contention
from benchsel.defaults import OUT_DIR
from benchsel.errors import RunInProgress, StoreError, UsageError
from benchsel.paths import prepare_parent
from benchsel.records import ColdPrefill, Memory, ModelSnapshot, Reply, reply_text, storable_text

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_DB = OUT_DIR / "benchsel.sqlite"


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


def _m003_run_leases(db: sqlite3.Connection) -> None:
    # One row per command in progress (its run key): the process that holds it, so a second process
    # running the same command is refused, and a run whose process died is shown as interrupted.
    _script(
        db,
        """
        CREATE TABLE leases (
            run_key TEXT PRIMARY KEY,
            run_id TEXT,
            pid INTEGER NOT NULL,
            pid_started TEXT,
            host TEXT NOT NULL,
            started_at TEXT NOT NULL
        )
        """,
    )


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
    ("003_run_leases", _m003_run_leases),
    ("004_model_speed", _m004_model_speed),
    ("005_probes", _m005_probes),
    ("006_hosts", _m006_hosts),
]

# A lease written on another machine cannot be checked; after this long it is taken to be stale.
FOREIGN_LEASE_STALE = timedelta(hours=12)
_held: set[str] = set()  # run keys this process holds now (a lease of this pid not in here is left over)

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


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Any SQLite failure inside a Store method becomes a StoreError naming the file and the fix."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, Store)
            raise StoreError(store.explain(exc)) from None

    return guarded


class Store:
    """A SQLite run store. Safe to share between the runner's threads (one connection, one lock).

    A store on a read-only file system (or a file without write permission) opens read-only: listing
    and reports work; writing raises a StoreError that says to copy it somewhere writable."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = self.path.is_file() and not _writable(self.path)
        if not self.read_only:
            prepare_parent(self.path, "--db")
        try:
            if self.read_only:
                # immutable: SQLite then needs no -shm file beside it, which a read-only folder refuses;
                # only when no write-ahead log holds replies that immutable mode would not read
                wal = self.path.with_name(self.path.name + "-wal")
                flags = "mode=ro" if wal.is_file() and wal.stat().st_size else "mode=ro&immutable=1"
                uri = f"file:{quote(str(self.path.absolute()))}?{flags}"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            tables = self._tables()  # before anything is written: a foreign file stays as it was
            if tables and "_migrations" not in tables:
                raise UsageError(
                    f"{self.path} is a SQLite file but not a benchsel run store (it holds the tables "
                    f"{', '.join(sorted(tables))}) - benchsel leaves it untouched; "
                    "pass --db with another file name"
                )
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(self.explain(exc)) from None
        self._lock = threading.Lock()
        self.migrate()

    def _tables(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def explain(self, exc: BaseException) -> str:
        """One line for a failure of this store: what is wrong and what to do. Nothing is deleted."""
        text = str(exc)
        lowered = text.lower()
        where = f"the run store {self.path}"
        if "disk is full" in lowered or "no space" in lowered:
            return (
                f"{where}: the disk is full ({text}) - free space on that disk and re-run the same command: "
                "every reply received so far is stored and the run resumes"
            )
        if "readonly" in lowered or "read-only" in lowered:
            copy = Path("/tmp") / self.path.name
            return (
                f"{where} cannot be written ({text}) - listing runs and writing reports work as it is; "
                "to run "
                f"or select, copy it somewhere writable (cp {self.path} {copy}) and pass --db {copy}"
            )
        if "locked" in lowered or "busy" in lowered:
            return f"{where} is locked by another process ({text}) - wait for it to finish and try again"
        if any(sign in lowered for sign in ("malformed", "not a database", "decode", "corrupt")):
            return (
                f"{where} is damaged ({text}) - benchsel leaves the file untouched; "
                "recover what it holds with "
                f"`sqlite3 {self.path} .recover | sqlite3 recovered.sqlite` and pass --db recovered.sqlite, "
                "or pass --db NEW.sqlite to start a new store"
            )
        return f"cannot use {where} ({text}) - check the file, or pass --db NEW.sqlite to start a new store"

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
                with suppress(sqlite3.Error):  # a full disk can fail the rollback too; SQLite recovers
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @_guarded
    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; returns the names applied."""
        tables = self._tables()
        done = {row[0] for row in self._db.execute("SELECT name FROM _migrations")} if tables else set()
        if self.read_only:
            return []  # read as it is; a write says to copy the store somewhere writable
        self._db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        applied = []
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            with self._tx() as db:
                migration(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, _now()))
            applied.append(name)
        return applied

    @_guarded
    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM _migrations ORDER BY name")]

    # ---- runs -----------------------------------------------------------------------------------

    @_guarded
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

    @_guarded
    def set_status(self, run_id: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    @_guarded
    def latest_run_with_key(self, run_key: str) -> RunRecord | None:
        row = self._db.execute(
            "SELECT * FROM runs WHERE run_key = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", (run_key,)
        ).fetchone()
        return _run(row) if row else None

    @_guarded
    def run(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique prefix of it, or 'latest'."""
        if run_id == "latest":
            row = self._db.execute(
                "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise UsageError(f"no runs in {self.path} yet - start one with `benchsel run --models ...`")
            return self._with_live_status([_run(row)])[0]
        rows = self._db.execute("SELECT * FROM runs WHERE id LIKE ? || '%'", (run_id,)).fetchall()
        if len(rows) == 1:
            return self._with_live_status([_run(rows[0])])[0]
        if not rows:
            raise UsageError(f"no run '{run_id}' in {self.path} - `benchsel runs` lists them")
        raise UsageError(f"run id '{run_id}' is ambiguous ({len(rows)} runs start with it) - give more of it")

    @_guarded
    def runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return self._with_live_status([_run(row) for row in rows])

    # ---- leases: one live process per command -----------------------------------------------------

    @contextmanager
    def lease(self, run_key: str) -> Iterator[None]:
        """Hold the command ``run_key`` for this process while the block runs; raises RunInProgress when
        a live process holds it. A lease left by a process that died is taken over."""
        with self._guard(), self._tx() as db:
            row = db.execute("SELECT * FROM leases WHERE run_key = ?", (run_key,)).fetchone()
            if row is not None and _holder_alive(row):
                what = f"run {row['run_id']}" if row["run_id"] else "a run"
                raise RunInProgress(
                    f"the same command is already running in process {row['pid']} on {row['host']} "
                    f"(since {row['started_at']}, {what}, store {self.path}) - "
                    "wait for it to finish or stop it; "
                    "running the command again afterwards resumes the run"
                )
            db.execute(
                "INSERT OR REPLACE INTO leases (run_key, run_id, pid, pid_started, host, started_at)"
                " VALUES (?, NULL, ?, ?, ?, ?)",
                (run_key, os.getpid(), _process_started(os.getpid()), socket.gethostname(), _now()),
            )
        _held.add(run_key)
        try:
            yield
        finally:
            _held.discard(run_key)
            with suppress(sqlite3.Error), self._tx() as db:
                db.execute("DELETE FROM leases WHERE run_key = ? AND pid = ?", (run_key, os.getpid()))

    @_guarded
    def attach_lease(self, run_key: str, run_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE leases SET run_id = ? WHERE run_key = ? AND pid = ?", (run_id, run_key, os.getpid())
            )

    def _with_live_status(self, records: list[RunRecord]) -> list[RunRecord]:
        """A run left 'running' by a process that is gone (kill -9, power loss) is shown as interrupted:
        re-running its command resumes it."""
        if not any(record.status == "running" for record in records):
            return records
        try:
            rows = self._db.execute("SELECT * FROM leases WHERE run_id IS NOT NULL").fetchall()
        except sqlite3.OperationalError:  # a read-only store from before leases existed
            rows = []
        live = {row["run_id"] for row in rows if _holder_alive(row)}
        return [
            replace(record, status="interrupted")
            if record.status == "running" and record.id not in live
            else record
            for record in records
        ]

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(self.explain(exc)) from None

    # ---- models ---------------------------------------------------------------------------------

    @_guarded
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

    @_guarded
    def save_model_speed(
        self,
        run_id: str,
        name: str,
        *,
        cold_prefill: ColdPrefill | None = None,
        contention: Contention | None = None,
        host: str = "",
    ) -> None:
        """Record a model's cold prefill and the contention during its run on ``host`` (each kept when not
        given): figures are pinned to the (model, host) pair like the rest of the models row."""
        with self._tx() as db:
            db.execute(
                "UPDATE models SET cold_prefill_json = COALESCE(?, cold_prefill_json),"
                " contention_json = COALESCE(?, contention_json) WHERE run_id = ? AND name = ? AND host = ?",
                (
                    json.dumps(asdict(cold_prefill)) if cold_prefill else None,
                    json.dumps(asdict(contention)) if contention else None,
                    run_id,
                    name,
                    host,
                ),
            )

    @_guarded
    def set_host_error(self, run_id: str, model: str, host: str, error: str) -> None:
        """Record why ``host`` stopped serving ``model`` (its cases moved to another host)."""
        with self._tx() as db:
            db.execute(
                "UPDATE models SET host_error = ? WHERE run_id = ? AND name = ? AND host = ?",
                (error[:500], run_id, model, host),
            )

    @_guarded
    def models(self, run_id: str) -> list[StoredModel]:
        rows = self._db.execute("SELECT * FROM models WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return [_model(row) for row in rows]

    # ---- results --------------------------------------------------------------------------------

    @_guarded
    def add_result(self, result: StoredResult) -> None:
        reply = result.reply
        values = [getattr(reply, column) if reply else None for column in _REPLY_COLUMNS]
        # whatever a server sent is stored: text fields as UTF-8 can hold them (lone surrogates marked)
        for index, column in enumerate(_REPLY_COLUMNS):
            if column in ("content", "thinking") and reply is not None:
                values[index] = reply_text(values[index])
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
                    storable_text(result.error_message) if result.error_message else None,
                    result.cached_from,
                    _now(),
                    result.host,
                ),
            )

    @_guarded
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

    @_guarded
    def result_counts(self, run_id: str) -> tuple[int, int]:
        """(answered, failed) over the newest row of each model x case x repeat, without loading them."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(error_kind IS NOT NULL OR content IS NULL), 0) FROM results"
            " WHERE id IN (SELECT MAX(id) FROM results WHERE run_id = ? GROUP BY model, case_id, repeat)",
            (run_id,),
        ).fetchone()
        return row[0] - row[1], row[1]

    @_guarded
    def answered_keys(self, run_id: str) -> set[str]:
        """Cache keys this run already holds a good answer for."""
        rows = self._db.execute(
            "SELECT cache_key FROM results WHERE run_id = ? AND error_kind IS NULL", (run_id,)
        )
        return {row[0] for row in rows}

    @_guarded
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


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _process_started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _holder_alive(row: sqlite3.Row) -> bool:
    """Whether the process that wrote a lease still runs."""
    if row["host"] != socket.gethostname():
        started = datetime.fromisoformat(row["started_at"])
        return datetime.now(UTC) - started < FOREIGN_LEASE_STALE
    pid = int(row["pid"])
    if pid == os.getpid():
        return row["run_key"] in _held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    recorded = row["pid_started"]
    return recorded is None or recorded == _process_started(pid)


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
