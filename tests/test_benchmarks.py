"""The speed benchmarks run to the end on a short setting and print every figure they record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(script: str, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--no-docs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_bench_scoring_measures_in_process_and_end_to_end() -> None:
    out = run_benchmark("bench_scoring.py", "--cases", "300", "--repeats", "1")
    assert "(a) parse + schema + match per reply:" in out
    assert "(b) score() with bootstrap intervals:" in out
    assert "(c) `benchsel score` end to end, process start included:" in out


@pytest.mark.integration
def test_bench_runner_compares_with_a_minimal_client_and_without_the_cache() -> None:
    args = ("--cases", "2", "--num-predict", "8", "--rounds", "1", "--threads", "2", "--skip-concurrency")
    out = run_benchmark("bench_runner.py", *args)
    assert "| benchsel run -j 1 / minimal httpx client |" in out
    assert "| benchsel with prompt cache / --no-prompt-cache |" in out
    assert "contention:" in out
