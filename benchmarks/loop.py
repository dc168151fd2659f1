"""The whole loop on the CPU with the real SmolLM2-135M-Instruct: benchmark on the embedded engine ->
select -> LoRA on synthetic data -> re-benchmark with the GGUF adapter -> before/after comparison.

Writes the figures into docs/training.md and docs/performance.md between the ``loop`` markers.
Slow (run by hand, `make loop`): the budget flags trade fidelity for time.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchsel import api  # noqa: E402
from benchsel.selection import select, write_selection  # noqa: E402

START, END = "<!-- loop -->", "<!-- /loop -->"
DOCS = (ROOT / "docs" / "performance.md", ROOT / "docs" / "training.md")
MODEL = "smollm2:135m"


from _docs import record  # noqa: E402


def run_loop(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from benchsel.loop import train_and_evaluate
    from benchsel.train.lora import TrainSettings
    from benchsel.train.pipeline import TrainPlan

    db = out / "runs.db"
    t0 = time.perf_counter()
    before = api.run(
        [MODEL], evalset=args.evalset, backend="llamacpp", limit=args.limit,
        num_predict=args.num_predict, db=db, threads=args.threads,
    )  # fmt: skip
    bench_s = time.perf_counter() - t0
    selection_path = write_selection(select(before), out / "selection.json")
    settings = TrainSettings.model_validate(
        {"max_steps": args.max_steps, "per_device_batch_size": args.batch,
         "gradient_accumulation_steps": 1, "max_seq_len": 1024, "seed": 0}
    )  # fmt: skip
    plan = TrainPlan(
        from_selection=selection_path, synthetic_n=args.n, settings=settings, out_dir=out / "train",
        evaluate=True, db=db, threads=args.threads,
    )  # fmt: skip
    t1 = time.perf_counter()
    outcome = train_and_evaluate(plan, on_stage=print, on_progress=_print_progress)
    loop_s = time.perf_counter() - t1
    assert outcome.evaluation is not None
    return {"outcome": outcome, "bench_s": bench_s, "loop_s": loop_s}


def _print_progress(p: Any) -> None:
    loss = f"loss {p.loss:.4f}" if p.loss is not None else f"val loss {p.eval_loss:.4f}"
    print(f"step {p.step}/{p.max_steps} {loss} eta {p.eta_s or 0:.0f} s", flush=True)


def _est(estimate: Any, pct: bool = False) -> str:
    if pct:
        return f"{estimate.value:.0%} [{estimate.low:.0%}-{estimate.high:.0%}]"
    return f"{estimate.value:.2f} [{estimate.low:.2f}-{estimate.high:.2f}]"


def section(figures: dict[str, Any], args: argparse.Namespace) -> str:
    outcome = figures["outcome"]
    evaluation = outcome.evaluation
    before, after = evaluation.before.models[0], evaluation.after.models[0]
    rows = []
    for label, get, pct in (
        ("Valid JSON", lambda m: m.score.valid_json, True),
        ("Schema valid", lambda m: m.score.schema_valid, True),
        ("Entity F1 (as-is)", lambda m: m.score.as_is.entities.f1, False),
        ("Relationship F1 (as-is)", lambda m: m.score.as_is.relationships.f1, False),
        ("Entity F1 (content)", lambda m: m.score.content.entities.f1, False),
    ):
        rows.append(f"| {label} | {_est(get(before), pct)} | {_est(get(after), pct)} |")
    result = outcome.training
    load = os.getloadavg()[0]
    return "\n".join(
        [
            START,
            "## The loop (`benchmarks/loop.py`)",
            "",
            f"SmolLM2-135M-Instruct (Q4_1 GGUF) on the embedded engine, {args.evalset} "
            f"({f'first {args.limit}' if args.limit else 'all'} {before.score.replies} cases), "
            f"num_predict {args.num_predict}; LoRA r=16 alpha=32 on "
            f"{outcome.data_report.train} synthetic examples, {result.steps} steps at batch {args.batch}; "
            "95% bootstrap intervals over cases.",
            "",
            "| Metric | Before | After |",
            "|---|---|---|",
            *rows,
            "",
            f"Training: {result.train_seconds:.0f} s ({result.tokens_per_s:.0f} tok/s, peak RSS "
            f"{result.peak_memory_bytes / 2**30:.2f} GiB), best validation loss {result.best_eval_loss:.3f}. "
            f"Base benchmark {figures['bench_s']:.0f} s (0 when an earlier run of the loop stored it); "
            "train + export + re-benchmark "
            f"{figures['loop_s']:.0f} s. Comparison: runs {evaluation.before.run.id} -> "
            f"{evaluation.after.run.id}.",
            f"Measured {date.today()} with Python {platform.python_version()} on {os.cpu_count()} CPUs "
            f"({platform.machine()}), 1-minute load average {load:.1f}.",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--evalset", default="extraction-v1")
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N cases")
    parser.add_argument("--num-predict", type=int, default=256)
    parser.add_argument("--n", type=int, default=300, help="synthetic training examples")
    parser.add_argument("--max-steps", type=int, default=30, help="about 20 s a step on 2 cores")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "loop")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the docs alone")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures = run_loop(args, args.out)
    text = section(figures, args)
    print(text)
    if not args.no_write:
        for path in DOCS:
            record(text, path)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
