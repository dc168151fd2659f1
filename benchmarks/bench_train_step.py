"""A LoRA training step through benchsel's trainer vs plain peft + trl with the same settings, on the tiny
random Llama; the median step time of each, their ratio (goal: within 10%), into docs/performance.md.
With ``--model NAME`` (repeatable): a real model's seconds per step, tokens/s and peak RSS instead, e.g.
``engine-lock python benchmarks/bench_train_step.py --model smollm2:135m --steps 4 --batch 2 --n 40``."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- bench_train_step -->", "<!-- /bench_train_step -->"
PERFORMANCE_MD = ROOT / "docs" / "performance.md"
SETTINGS = {"r": 16, "alpha": 32, "per_device_batch_size": 4, "gradient_accumulation_steps": 1,
            "max_seq_len": 2048, "warmup_ratio": 0.0, "seed": 0, "epochs": 1}  # fmt: skip


from _docs import record  # noqa: E402


def _median_step(stamps: list[float]) -> float:
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]  # skip the first (warm-up) step
    return statistics.median(gaps)


def benchsel_step_s(base: Any, train: list[Any], val: list[Any], steps: int, out: Path) -> float:
    from benchsel.train.lora import TrainSettings, train_lora

    stamps: list[float] = []
    settings = TrainSettings.model_validate({**SETTINGS, "max_steps": steps})
    train_lora(
        base, train, val, settings, out, lambda p: stamps.append(time.perf_counter()) if p.loss else None
    )
    return _median_step(stamps)


def plain_step_s(hf_dir: Path, train: list[Any], val: list[Any], steps: int, out: Path) -> float:
    """What a person writes with peft + trl alone: the same model, LoRA, batch, schedule and data."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                stamps.append(time.perf_counter())

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    config = SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=4, per_device_eval_batch_size=4,
        learning_rate=2e-4, lr_scheduler_type="cosine", logging_steps=1, eval_strategy="epoch",
        save_strategy="no", max_length=2048, seed=0, use_cpu=True, bf16=False, report_to="none",
        disable_tqdm=True,
        # the same as benchsel's default (and SFTConfig's): activation checkpointing on
        activation_checkpointing=True,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(hf_dir),
        args=config,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(val),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear"),
        callbacks=[Stamp()],
    )
    trainer.train()
    return _median_step(stamps)


def measure(steps: int, n: int, rounds: int) -> dict[str, float]:
    from benchsel.evalset import load_evalset
    from benchsel.train.base import resolve_base
    from benchsel.train.data import prepare
    from benchsel.train.pipeline import render_rows, synthetic_examples
    from benchsel.train.tiny import build_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = resolve_base(str(build_tiny_llama(root / "tiny")))
        evalset = load_evalset("extraction-v1")
        data = prepare(synthetic_examples(n, 0, evalset), schema=evalset.schema, evalset=evalset)
        train, val = render_rows(base, data.train), render_rows(base, data.validation)
        # alternate the two, round after round: a tiny model's step is a fraction of a second, so one
        # pair of runs swings by 20% or more on a shared machine; the median of the rounds' ratios is
        # the figure, and the spread is shown beside it
        plain_steps, our_steps = [], []
        for round_ in range(rounds):
            plain_steps.append(plain_step_s(base.hf_dir, train, val, steps, root / f"plain{round_}"))
            our_steps.append(benchsel_step_s(base, train, val, steps, root / f"ours{round_}"))
    ratios = sorted(o / p for o, p in zip(our_steps, plain_steps, strict=True))
    return {
        "benchsel_step_s": statistics.median(our_steps),
        "plain_step_s": statistics.median(plain_steps),
        "ratio": statistics.median(ratios),
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
    }


def section(figures: dict[str, float], steps: int, rounds: int) -> str:
    ratio = figures["ratio"]
    verdict = "meets it" if abs(ratio - 1) <= 0.10 else "misses it"
    return "\n".join(
        [
            START,
            "## A training step (`benchmarks/bench_train_step.py`)",
            "",
            f"Tiny random Llama (2 layers, hidden 64), LoRA r=16 on all linear layers, batch 4, "
            f"extraction-v1 prompts; per run the median of {steps - 2} step times after the first; "
            f"{rounds} alternating rounds of each trainer, medians over rounds.",
            "",
            "| Trainer | Seconds per step |",
            "|---|---|",
            f"| benchsel `train_lora` | {figures['benchsel_step_s']:.4f} |",
            f"| plain peft + trl `SFTTrainer` | {figures['plain_step_s']:.4f} |",
            f"| **ratio** (median of the rounds' ratios) | **{ratio:.2f}** "
            f"(rounds from {figures['ratio_min']:.2f} to {figures['ratio_max']:.2f}) |",
            "",
            f"Goal: within 10% of plain peft + trl: {verdict}. Both build the same `SFTTrainer` "
            "(benchsel's config differs only in bookkeeping: epoch checkpoints, best-model tracking, "
            "counted tokens, the loss from the answer positions' logits only), and both checkpoint "
            "activations.",
            f"Measured {date.today()} with Python {platform.python_version()} on {os.cpu_count()} CPUs "
            f"({platform.machine()}), 1-minute load average {os.getloadavg()[0]:.1f}.",
            END,
        ]
    )


def model_step(model: str, steps: int, batch: int, n: int) -> dict[str, Any]:
    """One real model, benchsel's trainer: per-step seconds, tokens/s and peak RSS of training itself
    (run in a process of its own, so one model's peak does not hide the next's)."""
    from benchsel.evalset import load_evalset
    from benchsel.train.base import resolve_base
    from benchsel.train.data import prepare
    from benchsel.train.lora import TrainSettings, train_lora
    from benchsel.train.pipeline import render_rows, synthetic_examples

    base = resolve_base(model)
    evalset = load_evalset("extraction-v1")
    data = prepare(synthetic_examples(n, 0, evalset), schema=evalset.schema, evalset=evalset)
    train, val = render_rows(base, data.train), render_rows(base, data.validation)[:2]
    stamps: list[float] = []
    settings = TrainSettings.model_validate(
        {**SETTINGS, "per_device_batch_size": batch, "max_steps": steps, "load_best_model_at_end": False}
    )
    with tempfile.TemporaryDirectory() as tmp:

        def stamp(event: Any) -> None:
            if event.loss is not None:
                stamps.append(time.perf_counter())

        result = train_lora(base, train, val, settings, Path(tmp), stamp)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]  # the first step includes warm-up
    lengths = [len(row["input_ids"]) for row in train]
    return {
        "model": model,
        "batch": batch,
        "mean_tokens": statistics.mean(lengths),
        "step_s": statistics.median(gaps) if gaps else result.train_seconds / max(result.steps, 1),
        "tokens_per_s": result.tokens_per_s,
        "peak_rss_gib": result.peak_memory_bytes / 2**30,
        "baseline_rss_gib": result.baseline_memory_bytes / 2**30,
        "losses": list(result.train_losses),
    }


def model_section(rows: list[dict[str, Any]], steps: int, load: str, command: str) -> str:
    lines = [
        "<!-- bench_train_model -->",
        "## Training a real model on the CPU (`benchmarks/bench_train_step.py --model NAME`)",
        "",
        f"benchsel's trainer (LoRA r=16 on all linear layers, fp32, activation checkpointing on), "
        f"extraction-v1 synthetic examples, {steps} steps; the step time is the median after the first.",
        "",
        "| Model | Batch | Tokens per example | Seconds per step | Tokens/s | Peak RSS | RSS before |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {Path(r['model']).name} | {r['batch']} | {r['mean_tokens']:.0f} | {r['step_s']:.1f} "
        f"| {r['tokens_per_s']:.0f} | {r['peak_rss_gib']:.2f} GiB | {r['baseline_rss_gib']:.2f} GiB |"
        for r in rows
    ]
    lines += [
        "",
        f"Measured {date.today()} with Python {platform.python_version()} on {os.cpu_count()} CPUs "
        f"({platform.machine()}); `uptime` before: {load}. The machine is shared: step times vary with "
        "what else runs, the peak RSS does not.",
        f"Command: `engine-lock python benchmarks/bench_train_step.py {command}`.",
        "<!-- /bench_train_model -->",
    ]
    return "\n".join(lines)


def run_models(models: list[str], steps: int, batch: int, n: int) -> list[dict[str, Any]]:
    import json
    import subprocess

    rows = []
    for model in models:
        argv = [sys.executable, __file__, "--child", model, "--steps", str(steps), "--batch", str(batch)]
        done = subprocess.run([*argv, "--n", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", action="append", help="a real base (demo name, tag, .gguf); repeatable")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=2, help="with --model: per-device batch")
    parser.add_argument("--steps", type=int, default=22)
    parser.add_argument("--n", type=int, default=120, help="synthetic examples")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of both trainers")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    if args.child:
        import json

        print(json.dumps(model_step(args.child, args.steps, args.batch, args.n)))
        return
    if args.model:
        import subprocess

        load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
        rows = run_models(args.model, args.steps, args.batch, args.n)
        if not args.no_write:
            record(model_section(rows, args.steps, load, " ".join(sys.argv[1:])))
        return
    figures = measure(args.steps, args.n, args.rounds)
    for key, value in figures.items():
        print(f"{key:>16}: {value:.4f}")
    if not args.no_write:
        record(section(figures, args.steps, args.rounds))
        print(f"wrote {PERFORMANCE_MD}")


if __name__ == "__main__":
    main()
