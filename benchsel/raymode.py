"""Ray mode: each model's benchmark runs as a Ray task on a node with the resources it needs, served by
that node's own engine (its Ollama, or the embedded llama-server on a GGUF). Replies stream back to
this process, which stores them as a local run does, so resume, cache keys and reports are unchanged.

``stream_on_node`` is the generic part: any callable run on a node, its results streamed back."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import queue
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from benchsel import runner
from benchsel.backends.base import Backend
from benchsel.contention import Contention
from benchsel.errors import BenchselError, MissingExtra, UsageError
from benchsel.multihost import BackendNames, HostFailed, HostView
from benchsel.records import ColdPrefill, Memory, ModelSnapshot
from benchsel.runner import EventCallback, RunAborted, RunFinished, RunSpec, RunStarted
from benchsel.store import RunRecord, Store, StoredResult

__all__ = ["EngineChoice", "NodeResources", "check_fits", "run_on_ray", "stream_on_node"]

Emit = Callable[[Any], None]

# A task whose node dies is sent again (resuming from the store) this many times in all.
TASK_ATTEMPTS = 2


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtra("Ray mode", "ray") from exc
    return ray


@dataclass(frozen=True)
class NodeResources:
    """What a task needs of its node, in Ray's terms (``memory_bytes``: Ray's logical memory)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_bytes: int | None = None

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_bytes:
            options["memory"] = self.memory_bytes
        return options


# ---- the generic launcher -------------------------------------------------------------------------


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _node_stream(fn: Callable[[Emit], None]) -> Iterator[Any]:
    """On the node: run ``fn(emit)`` in a thread and yield each thing it emits as it emits it."""
    items: queue.Queue[Any] = queue.Queue()
    done = object()

    def work() -> None:
        try:
            fn(items.put)
        except BaseException as exc:
            items.put(_Raised(exc))
        finally:
            items.put(done)

    threading.Thread(target=work, daemon=True, name="benchsel-node").start()
    while (item := items.get()) is not done:
        if isinstance(item, _Raised):
            raise item.error
        yield item


@functools.cache
def _remote() -> Any:
    return _ray().remote(num_returns="streaming", max_retries=0)(_node_stream)


def stream_on_node(fn: Callable[[Emit], None], resources: NodeResources) -> Iterator[Any]:
    """Run ``fn(emit)`` as a Ray task on a node with ``resources``; yield what it emits, in order, while
    it runs. ``fn`` must pickle (a module-level function or a ``functools.partial`` of one). Raises
    Ray's errors when the task or its node fails."""
    ray = _ray()
    for ref in _remote().options(**resources.ray_options()).remote(fn):
        yield ray.get(ref)


def check_fits(resources: NodeResources, what: str) -> None:
    """Refuse, in one line, a task that no live node of the cluster has the resources for: Ray would
    keep it waiting for such a node for ever. (A cluster that adds nodes on demand is not foreseen.)"""
    from benchsel.hardware import format_bytes

    need = {"CPU": resources.num_cpus, "GPU": resources.num_gpus, "memory": resources.memory_bytes or 0}
    for node in _ray().nodes():
        have = node.get("Resources", {})
        if node.get("Alive") and all(have.get(key, 0.0) >= value for key, value in need.items()):
            return
    asked = [f"{resources.num_cpus:g} CPU", f"{resources.num_gpus:g} GPU"]
    if resources.memory_bytes:
        asked.append(f"{format_bytes(resources.memory_bytes)} of memory")
    raise UsageError(
        f"no node of the Ray cluster has {', '.join(asked)} for {what} - add such a node "
        "(`ray start --address HEAD:6379 --num-gpus N --memory BYTES`) or ask for less"
    )


def node_name() -> str:
    """This node as the reports name it: its IP and the start of its Ray node id."""
    ray = _ray()
    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


# ---- on the node ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineChoice:
    """How a node serves: a backend kind (``auto``: the node's Ollama if it answers, else the embedded
    engine), CPU threads and a LoRA adapter for the embedded engine: a path every node has, or the
    adapter's bytes (``adapter``), which travel with the task so nodes need no shared path."""

    kind: str = "auto"
    threads: int | None = None
    lora: str | None = None
    adapter: bytes | None = field(default=None, repr=False)

    @classmethod
    def shipping(cls, kind: str, threads: int | None, lora: str | Path | None) -> EngineChoice:
        """The choice with the adapter file at ``lora`` (on this machine) carried as bytes."""
        if lora is None:
            return cls(kind, threads)
        return cls(kind, threads, str(lora), Path(lora).read_bytes())

    def backend(self, slots: int) -> Backend:
        from benchsel.backends.factory import make_backend

        lora = Path(self.lora) if self.lora else None
        if self.adapter is not None:
            lora = node_copy(self.adapter, ".gguf")
        return make_backend(self.kind, threads=self.threads, slots=slots, lora=lora)


def node_copy(data: bytes, suffix: str) -> Path:
    """``data`` as a file in this node's temporary folder, named by its hash: written once per node,
    whole (renamed into place), whatever tasks run at the same time."""
    folder = Path(tempfile.gettempdir()) / "benchsel-ray-files"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if not path.exists():
        part = folder / f"{path.name}.{uuid.uuid4().hex}.part"
        part.write_bytes(data)
        part.replace(path)
    return path


def _describe(engine: EngineChoice, model: str, emit: Emit) -> None:
    backend = engine.backend(slots=1)
    try:
        emit(_outcome(lambda: backend.describe(model)))
    finally:
        backend.close()


@dataclass(frozen=True)
class _Job:
    spec: RunSpec
    record: RunRecord
    snapshot: ModelSnapshot
    answered: frozenset[str]
    engine: EngineChoice


class _Relay:
    """The store as the runner on a node sees it: what is answered comes from the coordinator (which
    also copied cached answers in), what is new streams back to it."""

    def __init__(self, emit: Emit, answered: frozenset[str]) -> None:
        self.emit, self.answered = emit, answered

    def answered_keys(self, run_id: str) -> set[str]:
        return set(self.answered)

    def cached(self, cache_key: str) -> StoredResult | None:
        return None

    def add_result(self, result: StoredResult) -> None:
        self.emit(("result", result))

    def save_model(
        self,
        run_id: str,
        snapshot: ModelSnapshot,
        *,
        load_s: float | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.emit(("model", snapshot, load_s, memory))

    def save_model_speed(
        self,
        run_id: str,
        name: str,
        *,
        cold_prefill: ColdPrefill | None = None,
        contention: Contention | None = None,
    ) -> None:
        self.emit(("speed", name, cold_prefill, contention))


def _benchmark(job: _Job, emit: Emit) -> None:
    backend = job.engine.backend(slots=job.spec.concurrency)
    try:
        emit(("host", node_name()))
        snapshot = backend.describe(job.snapshot.name)
        if snapshot.digest != job.snapshot.digest:
            raise UsageError(
                f"node {node_name()} serves other weights for {snapshot.name} ({snapshot.digest[:19]}, "
                f"not {job.snapshot.digest[:19]}) - install the same version on every node"
            )
        relay = _Relay(emit, job.answered)
        runner.run_model(job.spec, backend, relay, job.record, snapshot, lambda event: emit(("event", event)))
    except BenchselError as exc:
        emit(("error", exc.exit_code, str(exc)))
    finally:
        backend.close()


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except BenchselError as exc:
        return ("error", (exc.exit_code, str(exc)))


# ---- the coordinator ------------------------------------------------------------------------------


def connect(address: str) -> bool:
    """Join the Ray cluster at ``address`` ('auto': the one this machine belongs to; 'local': start a
    private one). Returns True when this call connected (and so should disconnect)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    why = None if address in ("auto", "local") else unreachable(address)
    if why is not None:  # ray.init would retry for minutes
        raise UsageError(
            f"cannot reach a Ray cluster at {address} ({why}) - start one with `ray start --head` "
            "(then `ray start --address HEAD:6379` on each node) or pass the head's address to --ray"
        )
    try:
        ray.init(
            address=None if address == "local" else address, log_to_driver=False, configure_logging=False
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(
            f"cannot reach a Ray cluster at {address} ({str(exc).splitlines()[0]}) - start one with "
            "`ray start --head` (then `ray start --address HEAD:6379` on each node) or pass --ray ADDRESS"
        ) from None
    return True


@contextlib.contextmanager
def session(address: str) -> Iterator[None]:
    """Connected to the cluster at ``address`` for the block (see :func:`connect`)."""
    joined = connect(address)
    try:
        yield
    finally:
        if joined:
            _ray().shutdown()


def unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing accepts a connection at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``); None
    when something does, or when the address is not of that form (Ray judges it then)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def run_on_ray(
    spec: RunSpec,
    store: Store,
    *,
    address: str = "auto",
    engine: EngineChoice | None = None,
    resources: NodeResources | None = None,
    on_event: EventCallback | None = None,
    hardware: dict[str, Any] | None = None,
) -> RunRecord:
    """Run ``spec`` with each model a Ray task; replies are stored here as they stream in."""
    engine = engine or EngineChoice()
    resources = resources or NodeResources()
    with session(address):
        return _RayRun(spec, store, address, engine, resources, on_event, hardware or {}).run()


class _RayRun:
    def __init__(
        self,
        spec: RunSpec,
        store: Store,
        address: str,
        engine: EngineChoice,
        resources: NodeResources,
        on_event: EventCallback | None,
        hardware: dict[str, Any],
    ) -> None:
        self.spec, self.store, self.address, self.engine = spec, store, address, engine
        self.resources, self.hardware = resources, hardware
        self._on_event = on_event
        self._lock = threading.Lock()
        self.lost: list[str] = []
        self.usage_errors: list[str] = []

    def emit(self, event: Any) -> None:
        if self._on_event is not None:
            with self._lock:
                self._on_event(event)

    def run(self) -> RunRecord:
        snapshots = self._describe_all()
        for model in self.spec.models:  # before anything is stored: no task may wait for ever
            check_fits(self._resources(snapshots[model]), f"benchmarking {model}")
        digests = [snapshots[model].digest for model in self.spec.models]
        kinds = "+".join(sorted({snapshot.backend for snapshot in snapshots.values()}))
        names = cast(Backend, BackendNames(kinds))
        key = runner.run_key(self.spec, names, digests)
        with self.store.lease(key):  # one process per command and store, as for a local run
            return self._run_leased(key, names, snapshots)

    def _run_leased(self, key: str, names: Backend, snapshots: dict[str, ModelSnapshot]) -> RunRecord:
        record, resumed = runner.open_run(
            self.spec, key, names, self.store, f"ray:{self.address}", self.hardware
        )
        self.store.attach_lease(key, record.id)
        self.record = record
        self.emit(RunStarted(record, resumed))
        self.store.set_status(record.id, "running")
        threads = [
            threading.Thread(target=self._run_model, args=(snapshots[m],), name=f"ray-{m}")
            for m in self.spec.models
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:
            self.store.set_status(record.id, "interrupted")
            raise
        if self.usage_errors or self.lost:
            self.store.set_status(record.id, "interrupted")
            if self.usage_errors:
                raise UsageError(self.usage_errors[0])
            raise RunAborted("; ".join(self.lost), record.id)
        _, errors = self.store.result_counts(record.id)
        status = "complete" if errors == 0 else "complete-with-errors"
        self.store.set_status(record.id, status)
        finished = replace(record, status=status)
        self.emit(RunFinished(finished))
        return finished

    def _describe_all(self) -> dict[str, ModelSnapshot]:
        """Each model described by a node's engine: the node, not this process, holds the weights."""
        streams = {
            model: stream_on_node(functools.partial(_describe, self.engine, model), NodeResources(num_cpus=0))
            for model in self.spec.models
        }
        snapshots = {}
        for model, stream in streams.items():
            try:
                status, value = next(stream)
            except _ray().exceptions.RayError as exc:
                last = str(exc).strip().splitlines()[-1][:300]
                raise BenchselError(
                    f"a Ray node could not describe {model} ({last}) - install benchsel on every node "
                    "(pip install 'benchsel[embedded,ray]') and check `ray status`"
                ) from None
            if status == "error":
                raise UsageError(value[1]) if value[0] == 2 else BenchselError(value[1])
            snapshots[model] = value
        return snapshots

    def _resources(self, snapshot: ModelSnapshot) -> NodeResources:
        if self.resources.memory_bytes is not None or not snapshot.size_bytes:
            return self.resources
        return replace(self.resources, memory_bytes=snapshot.size_bytes)  # at least the weights

    def _run_model(self, snapshot: ModelSnapshot) -> None:
        ray = _ray()
        model = snapshot.name
        for attempt in range(1, TASK_ATTEMPTS + 1):
            runner.plan_model(self.spec, self.store, self.record, snapshot)  # copies cached answers in
            job = _Job(
                self.spec,
                self.record,
                snapshot,
                frozenset(self.store.answered_keys(self.record.id)),
                self.engine,
            )
            view = HostView(self.store, "")
            try:
                for item in stream_on_node(functools.partial(_benchmark, job), self._resources(snapshot)):
                    view = self._receive(item, view)
                return
            except (ray.exceptions.RayError, _NodeFailed) as exc:
                if isinstance(exc, _NodeFailed) and exc.usage:
                    self.usage_errors.append(str(exc))
                    return
                message = str(exc).strip().splitlines()[-1][:300]
                if view.host:
                    self.store.set_host_error(self.record.id, model, view.host, message)
                again = "another node" if attempt < TASK_ATTEMPTS else None
                self.emit(HostFailed(view.host or "(a Ray node)", model, message, again))
        self.lost.append(
            f"{model} could not finish on the Ray cluster - everything received is saved in run "
            f"{self.record.id}; re-run the same command to resume"
        )

    def _receive(self, item: tuple[Any, ...], view: HostView) -> HostView:
        kind = item[0]
        if kind == "host":
            return HostView(self.store, item[1])
        if kind == "result":
            view.add_result(item[1])
        elif kind == "model":
            view.save_model(self.record.id, item[1], load_s=item[2], memory=item[3])
        elif kind == "speed":
            view.save_model_speed(self.record.id, item[1], cold_prefill=item[2], contention=item[3])
        elif kind == "event":
            self.emit(item[1])
        elif kind == "error":
            raise _NodeFailed(item[2], usage=item[1] == 2)
        return view


class _NodeFailed(Exception):
    def __init__(self, message: str, *, usage: bool) -> None:
        super().__init__(message)
        self.usage = usage
