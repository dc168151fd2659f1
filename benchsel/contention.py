"""CPU contention: how much CPU other processes took while a model was measured, and a thread count
for the embedded engine that does not oversubscribe the cores.

llama.cpp's threads spin at a barrier after every operation: when another process takes a core one of
them runs on, every thread waits for it, and decode collapses (a 1.5B model fell from 25 to 0.7 tok/s
with 1.6 cores busy elsewhere). Speed figures taken so are flagged. Linux only (``/proc``); elsewhere
the record says it is unavailable.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Contention",
    "CpuSampler",
    "allowed_cpus",
    "default_threads",
    "other_load_cores",
    "physical_cores",
]

PROC = Path("/proc")
# Other processes using more than this many cores beyond those the engine leaves free flag a figure.
CONTENDED_EXTRA_CORES = 0.1
# Other load (in cores) at engine start above which the engine leaves one core free.
BUSY_AT_START_CORES = 0.5
LOAD_SAMPLE_S = 0.25


@dataclass(frozen=True)
class Contention:
    """CPU time other processes used on the CPUs this process may run on, while one model ran."""

    available: bool
    wall_s: float = 0.0
    other_cpu_s: float = 0.0
    cpus: int = 0
    engine_threads: int | None = None
    contended: bool | None = None
    reason: str = ""

    @property
    def other_cores(self) -> float | None:
        """Average number of cores busy with other processes."""
        return self.other_cpu_s / self.wall_s if self.available and self.wall_s > 0 else None

    @classmethod
    def unavailable(cls, reason: str) -> Contention:
        return cls(available=False, reason=reason)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_cores(cpus: list[int] | None = None) -> int:
    """Physical cores among ``cpus`` (hyper-threads of one core count once); logical CPUs when the
    topology cannot be read."""
    cpus = cpus if cpus is not None else allowed_cpus()
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return max(1, len(cores))


def _ticks_per_s() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks(cpus: list[int]) -> int:
    """Busy ticks of ``cpus`` from /proc/stat: user, nice, system, irq, softirq and steal (time the
    hypervisor gave to others is contention too)."""
    wanted = {f"cpu{cpu}" for cpu in cpus}
    busy = 0
    for line in (PROC / "stat").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            values = [int(v) for v in fields[1:9]]
            busy += values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy


def _tree_ticks(root: int) -> int:
    """CPU ticks of ``root`` and its descendants, children they reaped included (cutime, cstime)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    total = 0
    for pid, tick in ticks.items():
        current = pid
        while current > 1 and current != root:
            current = parents.get(current, 0)
        if current == root:
            total += tick
    return total


def _linux() -> bool:
    return (PROC / "stat").is_file() and (PROC / str(os.getpid()) / "stat").is_file()


class CpuSampler:
    """Measures the CPU time processes outside this one's tree (which includes the embedded engine)
    use between ``start()`` and ``stop()``."""

    def __init__(self, engine_threads: int | None = None) -> None:
        self.engine_threads = engine_threads
        self.cpus = allowed_cpus()
        self._start: tuple[float, int, int] | None = None

    def start(self) -> CpuSampler:
        if _linux():
            self._start = (time.perf_counter(), _busy_ticks(self.cpus), _tree_ticks(os.getpid()))
        return self

    def stop(self) -> Contention:
        if self._start is None:
            return Contention.unavailable("CPU time of other processes is read from /proc (Linux only)")
        started, busy0, ours0 = self._start
        wall_s = time.perf_counter() - started
        busy, ours = _busy_ticks(self.cpus) - busy0, _tree_ticks(os.getpid()) - ours0
        other_s = max(0, busy - ours) / _ticks_per_s()
        contended, reason = self._judge(other_s / wall_s if wall_s > 0 else 0.0)
        return Contention(True, wall_s, other_s, len(self.cpus), self.engine_threads, contended, reason)

    def _judge(self, other_cores: float) -> tuple[bool | None, str]:
        if self.engine_threads is None:
            return None, (
                f"other processes used {other_cores:.2f} cores on average; the server is not benchsel's "
                "own process, so this includes it when it runs on this machine"
            )
        free = max(0, len(self.cpus) - self.engine_threads)
        contended = other_cores > free + CONTENDED_EXTRA_CORES
        verdict = "speed figures taken under contention" if contended else "no contention"
        return contended, (
            f"other processes used {other_cores:.2f} cores on average beside an engine with "
            f"{self.engine_threads} threads on {len(self.cpus)} CPUs: {verdict}"
        )


def other_load_cores(seconds: float = LOAD_SAMPLE_S) -> float | None:
    """Cores busy with processes outside this one's tree right now (sampled over ``seconds``)."""
    if not _linux():
        return None
    sampler = CpuSampler().start()
    time.sleep(seconds)
    contention = sampler.stop()
    return contention.other_cores


def default_threads(other_cores: float | None) -> tuple[int, str]:
    """The embedded engine's thread count: one per physical core (what llama.cpp itself picks on a
    quiet machine; hyper-threads add little to matrix work and spin like the rest), less one when
    other processes were busy at start, so a preempted thread does not stall all the others."""
    cores = physical_cores()
    if other_cores is not None and other_cores >= BUSY_AT_START_CORES and cores > 1:
        return cores - 1, (
            f"{_threads(cores - 1)}: {cores} physical cores, one left free because other processes "
            f"used {other_cores:.1f} cores when the engine started"
        )
    return cores, f"{_threads(cores)}: one per physical core"


def _threads(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"
