"""Wall time of a 2-model run on one host against two hosts (docs/scale.md).

Each host is a llama-server on loopback serving SmolLM2-135M through the OpenAI-compatible API; the two
models are two names for that GGUF (their own cache keys). Two settings: each server on one CPU thread
(a host stands for a box with one core) and each server on the default thread count (the servers fight
for the same cores). Run under `engine-lock`; the figures depend on what else the machine runs.

    engine-lock env PYTHONPATH=$PWD python benchmarks/bench_hosts.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchsel import runner
from benchsel.backends.demo import demo_model_path
from benchsel.backends.engine import LlamaServer
from benchsel.evalset import load_evalset
from benchsel.hosts import parse_host
from benchsel.multihost import run_on_hosts
from benchsel.records import RequestOptions
from benchsel.store import Store

CASES = 6
MODELS = ("smollm2-a", "smollm2-b")
OPTIONS = RequestOptions(num_ctx=2048, num_predict=64, timeout_s=300)


def timed_run(servers: list[LlamaServer], models: tuple[str, ...], db: Path) -> float:
    hosts = [parse_host(f"h{i}=openai:{s.base_url}") for i, s in enumerate(servers, 1)]
    spec = runner.RunSpec(models=models, evalset=load_evalset("extraction-v1"), options=OPTIONS, limit=CASES)
    started = time.perf_counter()
    with Store(db) as store:
        run_on_hosts(spec, hosts, store)
    return time.perf_counter() - started


def main() -> None:
    path = demo_model_path("smollm2:135m")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min), cpus: {os.cpu_count()}")
    for threads in (1, None):
        servers = [LlamaServer(path, ctx=2048, slots=1, threads=threads) for _ in range(2)]
        try:
            for server in servers:
                server.start()
            with tempfile.TemporaryDirectory() as tmp:
                timed_run(servers[:1], ("warm-up",), Path(tmp) / "warm.sqlite")
                one = timed_run(servers[:1], MODELS, Path(tmp) / "one.sqlite")
                two = timed_run(servers, MODELS, Path(tmp) / "two.sqlite")
        finally:
            for server in servers:
                server.stop()
        label = f"{threads} thread" if threads else "default threads"
        print(
            f"{label}: one host {one:.1f} s, two hosts {two:.1f} s, ratio {one / two:.2f} "
            f"({len(MODELS)} models x {CASES} cases, num_predict {OPTIONS.num_predict})"
        )
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min)")


if __name__ == "__main__":
    main()
