"""Time `summarize_run` + `write_report` (md + html) on a synthetic run of 10 models x 200 cases in a
real store, and record the figures in docs/performance.md between the bench_report markers.

    python benchmarks/bench_report.py [--models 10] [--cases 200] [--no-write]

Goal: under 3 s for summarize + both reports (the first report in a process pays matplotlib's import).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchsel.report import write_report  # noqa: E402
from benchsel.report.demo import demo_profiles, write_demo_evalset, write_demo_run  # noqa: E402
from benchsel.store import Store  # noqa: E402
from benchsel.summary import summarize_run  # noqa: E402

GOAL_S = 3.0
START, END = "<!-- bench_report -->", "<!-- /bench_report -->"
PERFORMANCE_MD = ROOT / "docs" / "performance.md"


from _docs import record  # noqa: E402


def measure(models: int, cases: int) -> dict[str, float]:
    from benchsel.selection import Constraints, select

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        evalset = write_demo_evalset(root / "evalset", cases, seed=0)
        with Store(root / "runs.sqlite") as store:
            write_demo_run(store, evalset, demo_profiles(models), run_id="bench", seed=0)
            t0, cpu0 = time.perf_counter(), time.process_time()
            summary = summarize_run(store, "bench")
        t1 = time.perf_counter()
        selection = select(summary, Constraints.of(vram_bytes=8 * 1024**3, reserve_bytes=3 * 1024**3))
        t2 = time.perf_counter()
        paths = write_report(summary, selection, root / "out", ("md",))
        t3 = time.perf_counter()
        paths += write_report(summary, selection, root / "out", ("html",))
        t4, cpu4 = time.perf_counter(), time.process_time()
        sizes = {p.suffix: p.stat().st_size for p in paths}
    return {
        "summarize_s": t1 - t0,
        "select_s": t2 - t1,
        "markdown_s": t3 - t2,
        "html_s": t4 - t3,
        "total_s": (t1 - t0) + (t4 - t2),
        "total_cpu_s": cpu4 - cpu0,
        "html_bytes": sizes[".html"],
        "md_bytes": sizes[".md"],
    }


def section(figures: dict[str, float], models: int, cases: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    verdict = "meets" if figures["total_s"] < GOAL_S else "misses"
    return "\n".join(
        [
            START,
            "## Reports (`benchmarks/bench_report.py`)",
            "",
            f"Synthetic run of {models} models x {cases} cases in a real store; one cold process "
            "(the HTML report pays matplotlib's import).",
            "",
            "| Step | Seconds |",
            "|---|---|",
            f"| summarize_run (scoring, bootstrap intervals) | {figures['summarize_s']:.2f} |",
            f"| select (not in the total) | {figures['select_s']:.2f} |",
            f"| write_report md | {figures['markdown_s']:.2f} |",
            f"| write_report html (4 plots, drill-down) | {figures['html_s']:.2f} |",
            f"| **total: summarize + md + html** | **{figures['total_s']:.2f}** |",
            f"| CPU time of this process, select included | {figures['total_cpu_s']:.2f} |",
            "",
            f"report.html {figures['html_bytes'] / 1e6:.1f} MB, "
            f"report.md {figures['md_bytes'] / 1e3:.0f} kB. "
            f"Goal under {GOAL_S:g} s: {verdict} it.",
            f"Measured {datetime.now(UTC):%Y-%m-%d} with Python {platform.python_version()} on "
            f"{os.cpu_count()} CPUs ({platform.machine()}), 1-minute load average {load:.1f}.",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    figures = measure(args.models, args.cases)
    for key, value in figures.items():
        print(f"{key:>12}: {value:.3f}" if key.endswith("_s") else f"{key:>12}: {int(value)}")
    if not args.no_write:
        record(section(figures, args.models, args.cases))
        print(f"wrote {PERFORMANCE_MD}")


if __name__ == "__main__":
    main()
