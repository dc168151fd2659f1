"""Several inference hosts in one run: each model on one host at a time through the runner's own
per-model discipline (plan from the store, warm-up, send, unload), hosts in parallel threads, one
coordinator writing the one store. A host that fails hands its models to another host that has them;
they resume from the store, so each case is answered once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, cast

from benchsel import runner
from benchsel.backends.base import Backend
from benchsel.contention import Contention
from benchsel.errors import BackendUnavailable, BenchselError, ModelNotFound, TransportError, UsageError
from benchsel.hosts import HostSpec, assign, can_stand_in, check_unique, split_pins
from benchsel.records import ColdPrefill, Memory, ModelSnapshot
from benchsel.runner import EventCallback, RunAborted, RunFinished, RunSpec, RunStarted
from benchsel.store import RunRecord, Store, StoredResult

__all__ = ["HostFailed", "HostView", "run_on_hosts"]

# What says a host (not the model, not the request) is gone: the runner gave up on it mid-run, or it
# stopped answering at load.
HOST_FAILURES = (RunAborted, BackendUnavailable, TransportError)


@dataclass(frozen=True)
class HostFailed:
    """``host`` stopped serving ``model``; ``moved_to`` takes over its remaining cases (None: nobody can)."""

    host: str
    model: str
    error: str
    moved_to: str | None


class HostView:
    """The store as one host's runner sees it (a :class:`runner.ModelStore`): every reply and model
    row it writes carries the host."""

    def __init__(self, store: Store, host: str) -> None:
        self._store, self.host = store, host

    def answered_keys(self, run_id: str) -> set[str]:
        return self._store.answered_keys(run_id)

    def cached(self, cache_key: str) -> StoredResult | None:
        return self._store.cached(cache_key)

    def add_result(self, result: StoredResult) -> None:
        self._store.add_result(replace(result, host=self.host))

    def save_model(
        self,
        run_id: str,
        snapshot: ModelSnapshot,
        *,
        load_s: float | None = None,
        memory: Memory | None = None,
    ) -> None:
        self._store.save_model(run_id, snapshot, load_s=load_s, memory=memory, host=self.host)

    def save_model_speed(
        self,
        run_id: str,
        name: str,
        *,
        cold_prefill: ColdPrefill | None = None,
        contention: Contention | None = None,
    ) -> None:
        self._store.save_model_speed(
            run_id, name, cold_prefill=cold_prefill, contention=contention, host=self.host
        )


@dataclass(frozen=True)
class BackendNames:
    """What the run record needs of "the backend" of a run spread over several: their names."""

    name: str


def make_host_backend(host: HostSpec) -> Backend:
    from benchsel.backends.factory import make_backend

    if host.backend == "openai":
        return make_backend("openai", base_url=host.url)
    return make_backend("ollama", host=host.url)


def run_on_hosts(
    spec: RunSpec,
    hosts: Sequence[HostSpec],
    store: Store,
    *,
    on_event: EventCallback | None = None,
    hardware: dict[str, Any] | None = None,
    make_backend: Callable[[HostSpec], Backend] = make_host_backend,
) -> RunRecord:
    """Run ``spec`` over ``hosts``; ``spec.models`` may carry ``model@host`` pins.

    Raises UsageError when a model is on no host, and RunAborted when a host fails and no other host
    can take its models over (everything received is stored; re-running resumes)."""
    check_unique(hosts)
    models, pins = split_pins(spec.models, [host.name for host in hosts])
    spec = replace(spec, models=models)
    backends = {host.name: make_backend(host) for host in hosts}
    try:
        return _Coordinator(spec, hosts, backends, store, on_event, hardware or {}, pins).run()
    finally:
        for backend in backends.values():
            backend.close()


class _Coordinator:
    def __init__(
        self,
        spec: RunSpec,
        hosts: Sequence[HostSpec],
        backends: dict[str, Backend],
        store: Store,
        on_event: EventCallback | None,
        hardware: dict[str, Any],
        pins: dict[str, str],
    ) -> None:
        self.spec, self.hosts, self.backends, self.store = spec, hosts, backends, store
        self.hardware, self.pins = hardware, pins
        self._emit_lock = threading.Lock()
        self._on_event = on_event
        self.failed: set[str] = set()
        self.lost: list[str] = []

    def emit(self, event: Any) -> None:
        if self._on_event is not None:
            with self._emit_lock:  # the hosts' threads report through one callback
                self._on_event(event)

    def run(self) -> RunRecord:
        inventory = self._inventory()
        assignment = assign(self.spec.models, self.hosts, inventory, self.pins)
        self.inventory, self.candidates = inventory, assignment.candidates
        self.snapshots = {m: inventory[h][m] for m, h in assignment.host_of.items()}
        digests = [self.snapshots[m].digest for m in self.spec.models]
        kinds = "+".join(sorted({host.backend for host in self.hosts}))
        names = cast(Backend, BackendNames(kinds))
        key = runner.run_key(self.spec, names, digests)
        with self.store.lease(key):  # one process per command and store, as for a one-host run
            return self._run_leased(key, names, assignment.host_of)

    def _run_leased(self, key: str, names: Backend, host_of: dict[str, str]) -> RunRecord:
        record, resumed = runner.open_run(
            self.spec, key, names, self.store, ", ".join(host.name for host in self.hosts), self.hardware
        )
        self.store.attach_lease(key, record.id)
        self.record = record
        self.emit(RunStarted(record, resumed))
        self.store.set_status(record.id, "running")
        try:
            self._run_all(host_of)
        except BaseException:
            self.store.set_status(record.id, "interrupted")
            raise
        if self.lost:
            self.store.set_status(record.id, "interrupted")
            raise RunAborted("; ".join(self.lost), record.id)
        _, errors = self.store.result_counts(record.id)
        status = "complete" if errors == 0 else "complete-with-errors"
        self.store.set_status(record.id, status)
        finished = replace(record, status=status)
        self.emit(RunFinished(finished))
        return finished

    def _inventory(self) -> dict[str, dict[str, ModelSnapshot]]:
        """What each host has of the models asked for."""
        inventory: dict[str, dict[str, ModelSnapshot]] = {}
        for host in self.hosts:
            inventory[host.name] = {}
            for model in self.spec.models:
                try:
                    inventory[host.name][model] = self.backends[host.name].describe(model)
                except ModelNotFound:
                    continue
                except (BackendUnavailable, TransportError):
                    raise UsageError(
                        f"host {host.name} ({host.url}) does not answer - start its server, "
                        f"or leave host {host.name} out of the run"
                    ) from None
        return inventory

    def _run_all(self, host_of: dict[str, str]) -> None:
        # One single-thread executor per host: a host runs one model at a time, hosts run in parallel.
        pools = {h.name: ThreadPoolExecutor(1, thread_name_prefix=f"host-{h.name}") for h in self.hosts}
        jobs: dict[Future[None], tuple[str, str]] = {}
        try:
            for model in self.spec.models:
                host = host_of[model]
                jobs[pools[host].submit(self._run_pair, model, host)] = (model, host)
            while jobs:
                done, _ = wait(jobs, return_when=FIRST_COMPLETED)
                for future in done:
                    model, host = jobs.pop(future)
                    error = future.exception()
                    if error is None:
                        continue
                    if not isinstance(error, (*HOST_FAILURES, _HostDown)):
                        raise error
                    moved = self._move(model, host, error)
                    if moved is not None:
                        jobs[pools[moved].submit(self._run_pair, model, moved)] = (model, moved)
        finally:
            for pool in pools.values():
                pool.shutdown(wait=True, cancel_futures=True)

    def _run_pair(self, model: str, host: str) -> None:
        if host in self.failed:  # queued behind the model that found the host dead
            raise _HostDown(f"host {host} failed earlier in this run")
        snapshot = self.snapshots[model]
        own = self.inventory[host].get(model, snapshot)
        # the first host's digest keeps the cache keys, so a stand-in resumes rather than starts over
        view = HostView(self.store, host)
        keyed = replace(own, digest=snapshot.digest)
        runner.run_model(self.spec, self.backends[host], view, self.record, keyed, self.emit)

    def _move(self, model: str, host: str, error: BaseException) -> str | None:
        self.failed.add(host)
        message = str(error).splitlines()[0][:300]
        if not isinstance(error, _HostDown):
            self.store.set_host_error(self.record.id, model, host, message)
        stand_ins = [
            other
            for other in self.candidates[model]
            if other not in self.failed and can_stand_in(self.snapshots[model], self.inventory[other][model])
        ]
        moved = stand_ins[0] if stand_ins else None
        self.emit(HostFailed(host, model, message, moved))
        if moved is None:
            self.lost.append(
                f"host {host} failed while running {model} ({message}) and no other host has it - "
                f"everything received is saved in run {self.record.id}; bring {host} back or add a host "
                "that has the model, and re-run the same command to resume"
            )
        return moved


class _HostDown(BenchselError):
    """A model queued on a host that has since failed."""
