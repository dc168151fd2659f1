"""CPU contention from /proc: our own process tree is told apart from other processes, the verdict,
and the embedded engine's default thread count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchsel import contention
from benchsel.contention import Contention, CpuSampler

linux_only = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="reads /proc (Linux)")

SPIN = "import time\nend = time.perf_counter() + {s}\nwhile time.perf_counter() < end: pass\n"


@linux_only
def test_a_child_process_counts_as_ours() -> None:
    before = contention._tree_ticks(os.getpid())
    subprocess.run([sys.executable, "-c", SPIN.format(s=0.6)], check=True)  # reaped: our cstime/cutime
    child = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.6) + "time.sleep(5)"])
    try:
        time.sleep(0.9)  # the live child has spun by now
        spent = (contention._tree_ticks(os.getpid()) - before) / contention._ticks_per_s()
    finally:
        child.kill()
        child.wait()
    assert spent >= 0.9  # both children's CPU time (0.6 s each), counted once


@linux_only
def test_a_process_outside_our_tree_is_other_load() -> None:
    # `sh` starts the spinner in the background and exits: the orphan is no longer our descendant
    spinner = f"{sys.executable} -c '{SPIN.format(s=0.8)}'"
    sampler = CpuSampler(engine_threads=len(contention.allowed_cpus())).start()
    subprocess.run(["sh", "-c", f"{spinner} >/dev/null 2>&1 &"], check=True)
    time.sleep(1.2)
    measured = sampler.stop()
    assert measured.available and measured.wall_s >= 1.2
    assert measured.other_cpu_s >= 0.5  # the spinner's 0.8 s, whatever else the machine did
    assert measured.contended is True and "under contention" in measured.reason


def test_the_verdict_allows_for_the_cores_the_engine_leaves_free() -> None:
    sampler = CpuSampler(engine_threads=2)
    sampler.cpus = [0, 1, 2, 3]
    assert sampler._judge(1.5)[0] is False  # 2 of 4 cores free
    assert sampler._judge(2.5)[0] is True
    assert CpuSampler(engine_threads=None)._judge(3.0)[0] is None  # a server that is not ours
    assert Contention(True, 10.0, 5.0, 4, 2, False).other_cores == 0.5
    assert Contention.unavailable("no /proc").other_cores is None


def test_without_proc_the_record_says_it_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contention, "PROC", Path("/nonexistent"))
    measured = CpuSampler(engine_threads=2).start().stop()
    assert not measured.available and "Linux only" in measured.reason
    assert contention.other_load_cores() is None


def test_default_threads_leave_a_core_free_only_under_load() -> None:
    cores = contention.physical_cores()
    assert 1 <= cores <= len(contention.allowed_cpus())
    assert contention.default_threads(0.0)[0] == cores
    busy, reason = contention.default_threads(1.5)
    assert busy == max(1, cores - 1) if cores > 1 else busy == 1
    if cores > 1:
        assert "one left free" in reason
