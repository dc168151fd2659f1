"""Models x cases x repeats against one backend: warm-up, concurrency, retries, timeouts, resume.

Every reply is stored the moment it arrives. Progress goes out as events through a callback, so the
runner works without a terminal. Re-running the same command sends only what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from benchsel import __version__
from benchsel.backends.base import Backend
from benchsel.contention import Contention, CpuSampler
from benchsel.errors import BenchselError, RequestAborted, RequestRejected, RunTerminated, TransportError
from benchsel.evalset import Case, EvalSet
from benchsel.prefix_cache import prime
from benchsel.records import ColdPrefill, Memory, ModelSnapshot, Reply, RequestOptions
from benchsel.store import RunRecord, Store, StoredResult

T = TypeVar("T")

# After this many requests in a row fail in transport (each after its retries), the server is taken
# to be gone: the run stops, keeps what it has, and a re-run resumes.
CONSECUTIVE_FAILURES_TO_ABORT = 3


@dataclass(frozen=True)
class RunSpec:
    """What to run. ``options`` stay identical for every request to a model."""

    models: tuple[str, ...]
    evalset: EvalSet
    options: RequestOptions
    repeats: int = 1
    concurrency: int = 1
    retries: int = 3
    backoff_s: float = 0.5
    fresh: bool = False
    limit: int | None = None

    def cases(self) -> tuple[Case, ...]:
        return self.evalset.cases[: self.limit] if self.limit else self.evalset.cases


class ModelStore(Protocol):
    """What benchmarking one model needs of the store: the :class:`Store` itself, or a stand-in that
    tags or forwards what is written (``multihost.HostView``, ``raymode``'s relay from a node)."""

    def answered_keys(self, run_id: str) -> set[str]: ...

    def cached(self, cache_key: str) -> StoredResult | None: ...

    def add_result(self, result: StoredResult) -> None: ...

    def save_model(
        self,
        run_id: str,
        snapshot: ModelSnapshot,
        *,
        load_s: float | None = None,
        memory: Memory | None = None,
    ) -> None: ...

    def save_model_speed(
        self,
        run_id: str,
        name: str,
        *,
        cold_prefill: ColdPrefill | None = None,
        contention: Contention | None = None,
    ) -> None: ...


# ---- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    run: RunRecord
    resumed: bool


@dataclass(frozen=True)
class ModelStarted:
    model: str
    backend: str
    total: int
    already_done: int
    to_send: int


@dataclass(frozen=True)
class ModelLoaded:
    model: str
    load_s: float


@dataclass(frozen=True)
class ModelWarmed:
    """The prompt prefix is cached (prefix_cache); ``cold_prefill`` is None when the warm-up failed."""

    model: str
    cold_prefill: ColdPrefill | None


@dataclass(frozen=True)
class ReplyStored:
    model: str
    case_id: str
    repeat: int
    reply: Reply | None
    error_kind: str | None


@dataclass(frozen=True)
class Retrying:
    model: str
    case_id: str
    attempt: int
    error: str


@dataclass(frozen=True)
class ModelFinished:
    model: str
    memory: Memory | None
    errors: int


@dataclass(frozen=True)
class RunFinished:
    run: RunRecord


Event = (
    RunStarted
    | ModelStarted
    | ModelLoaded
    | ModelWarmed
    | ReplyStored
    | Retrying
    | ModelFinished
    | RunFinished
)
EventCallback = Callable[[Event], None]


class RunAborted(BenchselError):
    """The run stopped before the end; everything received is stored and a re-run resumes."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


# ---- keys ---------------------------------------------------------------------------------------


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def cache_key(
    snapshot: ModelSnapshot, evalset: EvalSet, case: Case, options: RequestOptions, repeat: int
) -> str:
    """Same model weights, eval set, case, prompt, options and repeat index -> same key."""
    return _sha(
        [
            snapshot.name,
            snapshot.digest,
            evalset.content_hash,
            case.id,
            evalset.prompt.sha256,
            options.as_dict(),
            repeat,
        ]
    )


def run_key(spec: RunSpec, backend: Backend, digests: Sequence[str] = ()) -> str:
    """The same command on the same weights resumes; ``digests`` (one per model) tell weights apart,
    such as a base served with and without a LoRA adapter."""
    return _sha(
        [
            spec.evalset.content_hash,
            spec.options.as_dict(),
            backend.name,
            list(spec.models),
            spec.repeats,
            spec.limit,
            list(digests),
        ]
    )


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class _ModelWork:
    snapshot: ModelSnapshot
    pending: list[tuple[Case, int, str]] = field(default_factory=list)
    done: int = 0


def run(
    spec: RunSpec,
    backend: Backend,
    store: Store,
    *,
    on_event: EventCallback | None = None,
    host: str = "",
    hardware: dict[str, Any] | None = None,
) -> RunRecord:
    """Run every model on every case, resuming an unfinished run of the same command.

    Raises the backend's errors for problems found before anything is sent (unknown model, no
    server) and :class:`RunAborted` when the server stops answering mid-run."""
    emit = on_event or (lambda event: None)
    snapshots = {model: backend.describe(model) for model in spec.models}
    digests = [snapshots[model].digest for model in spec.models]
    key = run_key(spec, backend, digests)
    with store.lease(key), _sigterm_interrupts():
        record, resumed = _open_run(spec, key, backend, store, host, hardware or {})
        store.attach_lease(key, record.id)
        emit(RunStarted(record, resumed))
        store.set_status(record.id, "running")
        try:
            for model in spec.models:
                _run_model(spec, backend, store, record, snapshots[model], emit)
        except BaseException:
            # best effort: a full disk may refuse this write too; a run whose process is gone is shown
            # as interrupted anyway (see Store.runs)
            with contextlib.suppress(BenchselError):
                store.set_status(record.id, "interrupted")
            raise
        _, errors = store.result_counts(record.id)
        status = "complete" if errors == 0 else "complete-with-errors"
        store.set_status(record.id, status)
    finished = replace(record, status=status)
    emit(RunFinished(finished))
    return finished


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a run is in progress, SIGTERM (`timeout`, `docker stop`, CI cancel) stops it the way Ctrl-C
    does: every reply kept, the engine stopped, the run marked interrupted. Only the main thread can
    install a signal handler; elsewhere the caller's handling stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise RunTerminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _open_run(
    spec: RunSpec, key: str, backend: Backend, store: Store, host: str, hardware: dict[str, Any]
) -> tuple[RunRecord, bool]:
    previous = None if spec.fresh else store.latest_run_with_key(key)
    if previous is not None:
        return previous, True
    now = datetime.now(UTC)
    record = RunRecord(
        id=f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        run_key=key,
        created_at=now.isoformat(timespec="seconds"),
        evalset_name=spec.evalset.name,
        evalset_hash=spec.evalset.content_hash,
        evalset_path=str(spec.evalset.path.resolve()),
        backend=backend.name,
        host=host,
        models=spec.models,
        repeats=spec.repeats,
        options={**spec.options.as_dict(), "concurrency": spec.concurrency, "limit": spec.limit},
        benchsel_version=__version__,
        hardware=hardware,
    )
    return store.create_run(record), False


def _plan(spec: RunSpec, store: ModelStore, record: RunRecord, snapshot: ModelSnapshot) -> _ModelWork:
    """What this model still needs: answered keys are skipped, cached answers are copied in."""
    answered = store.answered_keys(record.id)
    work = _ModelWork(snapshot)
    for repeat in range(spec.repeats):
        for case in spec.cases():
            key = cache_key(snapshot, spec.evalset, case, spec.options, repeat)
            if key in answered:
                work.done += 1
                continue
            cached = None if spec.fresh else store.cached(key)
            if cached is not None:
                store.add_result(replace(cached, run_id=record.id, cached_from=cached.run_id))
                work.done += 1
                continue
            work.pending.append((case, repeat, key))
    return work


def _run_model(
    spec: RunSpec,
    backend: Backend,
    store: ModelStore,
    record: RunRecord,
    snapshot: ModelSnapshot,
    emit: EventCallback,
) -> None:
    model = snapshot.name
    work = _plan(spec, store, record, snapshot)
    emit(ModelStarted(model, snapshot.backend, work.done + len(work.pending), work.done, len(work.pending)))
    store.save_model(record.id, snapshot)
    if not work.pending:
        emit(ModelFinished(model, None, 0))
        return
    load_s = _retrying(
        spec,
        threading.Event(),
        lambda attempt, exc: emit(Retrying(model, "(load)", attempt, str(exc))),
        # the backend that loads weights on this call (Ollama) gives it a longer limit of its own
        lambda: backend.load(model, spec.options),
    )
    store.save_model(record.id, snapshot, load_s=load_s)
    emit(ModelLoaded(model, load_s))
    sampler = CpuSampler(getattr(backend, "engine_threads", None)).start()
    try:
        on_retry = partial(_retry_event, emit, model, "(warm-up)")
        retry = partial(_retrying, spec, threading.Event(), on_retry)
        primed = prime(backend, model, spec.evalset.prompt, spec.options, spec.concurrency, retry)
        store.save_model_speed(record.id, model, cold_prefill=primed.cold)
        emit(ModelWarmed(model, primed.cold))
        errors = _send_all(spec, primed, store, record, model, work.pending, emit)
        memory = backend.memory(model)
        store.save_model(record.id, snapshot, memory=memory)
        store.save_model_speed(record.id, model, contention=sampler.stop())
        emit(ModelFinished(model, memory, errors))
    finally:
        backend.unload(model)


def _send_all(
    spec: RunSpec,
    backend: Backend,
    store: ModelStore,
    record: RunRecord,
    model: str,
    pending: list[tuple[Case, int, str]],
    emit: EventCallback,
) -> int:
    stop = threading.Event()
    schema = spec.evalset.schema if spec.options.format == "schema" else None
    errors = 0
    failures_in_a_row = 0
    last_error = ""

    def one(case: Case, repeat: int, key: str) -> _Outcome:
        outcome = _request(spec, backend, record.id, model, case, repeat, key, schema, stop, emit)
        store.add_result(outcome.result)
        return outcome

    pool = ThreadPoolExecutor(max_workers=max(1, spec.concurrency), thread_name_prefix="benchsel")
    queue = list(reversed(pending))
    running: set[Future[_Outcome]] = set()
    try:
        while queue or running:
            while queue and len(running) < max(1, spec.concurrency) and not stop.is_set():
                running.add(pool.submit(one, *queue.pop()))
            if not running:
                break
            done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                result = outcome.result
                errors += not result.ok
                transport_failure = isinstance(outcome.error, TransportError)
                failures_in_a_row = failures_in_a_row + 1 if transport_failure else 0
                last_error = result.error_message or last_error
                emit(ReplyStored(model, result.case_id, result.repeat, result.reply, result.error_kind))
                if failures_in_a_row >= CONSECUTIVE_FAILURES_TO_ABORT:
                    stop.set()
        if stop.is_set():
            left = len(queue) + len(running)
            raise RunAborted(
                f"the server stopped answering while running {model} ({failures_in_a_row} requests in a row "
                f"failed: {last_error}); everything received is saved in run {record.id} - "
                f"fix the server and re-run the same command to resume ({left} requests not sent)",
                record.id,
            )
    except BaseException:
        # Ctrl-C, SIGTERM, a failed store write: end the requests in flight now instead of waiting for
        # their answers (what arrived is stored; the rest is sent again on resume).
        stop.set()
        abort = getattr(backend, "abort", None)
        if abort is not None:
            abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return errors


def _retry_event(emit: EventCallback, model: str, what: str, attempt: int, exc: TransportError) -> None:
    emit(Retrying(model, what, attempt, str(exc)))


@dataclass(frozen=True)
class _Outcome:
    """A stored result and the error behind it, so callers test classes, not the stored strings."""

    result: StoredResult
    error: BenchselError | None = None


def _retrying(
    spec: RunSpec,
    stop: threading.Event,
    on_retry: Callable[[int, TransportError], None],
    call: Callable[[], T],
) -> T:
    """Call, retrying transport failures with exponential backoff; the last failure is raised."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except TransportError as exc:
            if not exc.retryable or attempt > spec.retries or stop.is_set():
                raise
            on_retry(attempt, exc)
            stop.wait(spec.backoff_s * 2 ** (attempt - 1))


def _request(
    spec: RunSpec,
    backend: Backend,
    run_id: str,
    model: str,
    case: Case,
    repeat: int,
    key: str,
    schema: dict[str, Any] | None,
    stop: threading.Event,
    emit: EventCallback,
) -> _Outcome:
    """One request with retries for transport failures only; a bad answer is never retried."""
    messages = spec.evalset.prompt.messages(case.text)
    base = StoredResult(run_id, model, case.id, repeat, key, None)

    on_retry = partial(_retry_event, emit, model, case.id)
    try:
        reply = _retrying(spec, stop, on_retry, lambda: backend.chat(model, messages, spec.options, schema))
    except RequestAborted:
        raise  # the run is stopping: nothing to store, the case is sent again on resume
    except TransportError as exc:
        return _Outcome(replace(base, error_kind=f"transport:{exc.kind}", error_message=str(exc)), exc)
    except RequestRejected as exc:
        return _Outcome(replace(base, error_kind=f"rejected:{exc.kind}", error_message=str(exc)), exc)
    except BenchselError as exc:
        if exc.exit_code == 2:
            raise
        kind = f"error:{type(exc).__name__}"
        return _Outcome(replace(base, error_kind=kind, error_message=str(exc)[:500]), exc)
    return _Outcome(replace(base, reply=reply))


# One model's share of a run, and opening the run record: the multi-host and Ray coordinators
# (benchsel.multihost, benchsel.raymode) drive these per (model, host).
run_model = _run_model
open_run = _open_run
plan_model = _plan
