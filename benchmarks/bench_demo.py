"""The README's demo, timed end to end: with the prompt cache (today's default) against
``--no-prompt-cache`` (what 0.1.0 sent on every request), side by side.

Each side runs the demo's two commands as a user types them, in a fresh folder with a fresh store (so
no result is reused), and is timed from the start of ``benchsel run`` to the end of ``benchsel select``:
process start, model loads, warm-ups, every case, scoring, the reports and the selection all count.
Rounds alternate which side goes first; the ratio is the median of the rounds' ratios.

    python benchmarks/bench_demo.py [--rounds 1] [--models ...] [--limit 12] [--num-predict 256]

About 6 minutes a round on 2 cores after `make setup`. Run it on a quiet machine: it records the CPU
time other processes used meanwhile beside the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from _docs import write_section
from _rounds import alternate

from benchsel.contention import CpuSampler

MODELS = "smollm2:135m,gemma3:270m,qwen2.5-coder:0.5b"


def demo_commands(args: argparse.Namespace, prompt_cache: bool) -> list[list[str]]:
    run = ["run", "--models", args.models, "--backend", "llamacpp", "--limit", str(args.limit),
           "--num-predict", str(args.num_predict)]  # fmt: skip
    if not prompt_cache:
        run.append("--no-prompt-cache")
    select = ["select", "latest", "--vram", "8GiB", "--reserve", "3GiB"]
    return [run, select]


def timed_demo(args: argparse.Namespace, prompt_cache: bool) -> float:
    """Seconds for the demo's commands in a fresh folder (a fresh store and reports)."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        started = time.perf_counter()
        for command in demo_commands(args, prompt_cache):
            subprocess.run(
                [sys.executable, "-m", "benchsel", *command], cwd=tmp, check=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--num-predict", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-docs", action="store_true", help="print only; do not update docs/")
    args = parser.parse_args()
    sampler = CpuSampler(engine_threads=os.cpu_count()).start()
    pairs = alternate(args.rounds, lambda: timed_demo(args, True), lambda: timed_demo(args, False))
    for i, (cached, uncached) in enumerate(pairs, 1):
        print(f"round {i}: prompt cache {cached:.1f} s, --no-prompt-cache {uncached:.1f} s")
    contention = sampler.stop()
    cached_s = statistics.median(c for c, _ in pairs)
    uncached_s = statistics.median(u for _, u in pairs)
    ratio = statistics.median(c / u for c, u in pairs)
    shown = " && ".join("benchsel " + shlex.join(c) for c in demo_commands(args, True))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {args.rounds} round(s), sides alternating. "
        f"While it ran, {contention.reason}. Command: "
        f"`python benchmarks/bench_demo.py --rounds {args.rounds}`.",
        "",
        f"The demo: `{shown}`, each side in a fresh folder with a fresh store, timed from the start of "
        "`benchsel run` to the end of `benchsel select` (process starts, model loads, warm-ups, scoring, "
        "reports included).",
        "",
        "| | wall time (s, median) |",
        "|---|---|",
        f"| with the prompt cache (default) | {cached_s:.1f} |",
        f"| `--no-prompt-cache` (what 0.1.0 sent) | {uncached_s:.1f} |",
        f"| ratio | {ratio:.2f} |",
    ]
    print("\n".join(lines))
    if not args.no_docs:
        write_section("bench_demo", "The demo, end to end (`benchmarks/bench_demo.py`)", "\n".join(lines))


if __name__ == "__main__":
    main()
