"""The pilot LoRA's training: the trainer run with the plan's settings, the same call on this machine
and on a Ray node (benchsel.probe.onray)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchsel.probe.figures import TrainingFigures
from benchsel.probe.plan import ProbePlan, StageFn, pilot_dir, pilot_settings, synthetic_count

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet


@dataclass(frozen=True)
class Pilot:
    """A trained pilot LoRA: what the embedded engine serves the base as, and the adapter."""

    engine_model: str
    adapter: Path
    training: TrainingFigures


def train_pilot(plan: ProbePlan, name: str, evalset: Path | EvalSet, stage: StageFn) -> Pilot:
    """Train ``name``'s LoRA with the plan's settings (here, or on a Ray node) into ``pilot_dir``,
    its synthetic data leak-checked against ``evalset``."""
    from benchsel.train.pipeline import TrainPlan, embedded_model, train

    settings = pilot_settings(plan)
    reset_peak_rss()
    outcome = train(
        TrainPlan(
            base=name,
            evalset=evalset,
            settings=settings,
            synthetic_n=synthetic_count(plan, settings),
            seed=plan.seed,
            out_dir=pilot_dir(plan, name),
            threads=plan.threads,
            cache_dir=plan.cache_dir,
            db=plan.db,
        ),
        on_stage=lambda text: stage(f"  {text}"),
    )
    result = outcome.training
    training = TrainingFigures(
        steps=result.steps,
        train_losses=list(result.train_losses),
        eval_losses=list(result.eval_losses),
        train_seconds=result.train_seconds,
        tokens_per_s=result.tokens_per_s,
        peak_memory_bytes=result.peak_memory_bytes,
        peak_memory_kind="cuda_max_allocated" if result.device == "cuda" else "process_max_rss",
        device=result.device,
        examples=outcome.data_report.kept,
        adapter=str(outcome.adapter_gguf),
    )
    return Pilot(embedded_model(outcome.base, outcome.out_dir), outcome.adapter_gguf, training)


def reset_peak_rss() -> None:
    """Start the process's peak-RSS count afresh, so each pilot reports its own peak and not the
    largest of the models trained before it in this process (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
