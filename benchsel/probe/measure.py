"""`benchsel probe`: measure each candidate's trainability on a probe split of its run, with the
existing runner, scorer, store and trainer, and store the figures with the run."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel.defaults import OUT_DIR
from benchsel.errors import BenchselError, UsageError
from benchsel.probe.figures import METHODS, ProbeFigures, ProbeMethod, TrainingFigures, paired_figures
from benchsel.probe.split import Split, split_cases, subset, with_shots

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet
    from benchsel.probe.estimate import ProbeEstimate
    from benchsel.store import StoredProbe
    from benchsel.summary import ModelSummary, RunSummary
    from benchsel.train.lora import TrainSettings

StageFn = Callable[[str], None]
DEFAULT_STEPS = 20
DEFAULT_SHOTS = 3
DEFAULT_FRACTION = 0.5
# The request options a probe copies from its run, so that zero-shot and probe differ only in the probe.
RUN_OPTION_KEYS = ("temperature", "seed", "num_ctx", "num_predict", "format", "think")


@dataclass(frozen=True)
class ProbePlan:
    run_id: str
    method: ProbeMethod
    top: int | None = None
    steps: int = DEFAULT_STEPS
    shots: int = DEFAULT_SHOTS
    fraction: float = DEFAULT_FRACTION
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    """TrainSettings overrides for the pilot LoRA (max_steps comes from ``steps``)."""
    synthetic_n: int | None = None
    db: Path | None = None
    out_dir: Path | None = None
    threads: int | None = None
    cache_dir: Path | None = None
    models: tuple[str, ...] | None = None
    """Probe these models of the run instead of the top of trainable potential."""


@dataclass(frozen=True)
class ProbeOutcome:
    probe: StoredProbe
    split: Split
    estimate: ProbeEstimate | None


def _validate(plan: ProbePlan) -> None:
    if plan.method not in METHODS:
        raise UsageError(f"--method {plan.method}: use one of {', '.join(METHODS)}")
    if plan.top is not None and plan.top < 1:
        raise UsageError(f"--top {plan.top}: probe at least 1 model")
    if plan.steps < 1:
        raise UsageError(f"--steps {plan.steps}: train at least 1 step")


def probe(plan: ProbePlan, *, on_stage: StageFn | None = None) -> ProbeOutcome:
    """Probe the run's candidates (the top of trainable potential, or ``plan.models``) and store it."""
    from benchsel.store import Store, StoredProbe
    from benchsel.summary import summarize_run

    _validate(plan)
    stage = on_stage or (lambda text: None)
    with Store(plan.db) as store:
        summary = summarize_run(store, plan.run_id)
    candidates = choose_candidates(summary, plan)
    limit = summary.run.options.get("limit") if isinstance(summary.run.options, dict) else None
    cases = summary.evalset.cases[:limit] if limit else summary.evalset.cases
    split = split_cases(cases, plan.fraction, plan.seed)
    estimate = _announce(plan, summary, candidates, split, stage)
    stored = StoredProbe(
        id=f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
        run_id=summary.run.id,
        method=plan.method,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        settings=_settings_json(plan),
        split=split.to_json(),
    )
    shots = _prerequisites(plan, summary.evalset)
    with Store(plan.db) as store:
        store.save_probe(stored)
    probe_set = subset(summary.evalset, split.probe)
    models: dict[str, dict[str, Any]] = {}
    for model in candidates:
        stage(f"Probing {model.name} ({plan.method}) on {len(split.probe)} probe cases")
        started = time.perf_counter()
        try:
            figures = _measure(plan, summary, model, probe_set, shots, stage)
        except BenchselError as exc:  # one model's failure (no trainable weights, say) is its row
            figures = ProbeFigures(model=model.name, status="failed", error=str(exc))
            stage(f"  {model.name}: probe failed: {exc}")
        figures = figures.model_copy(update={"seconds": time.perf_counter() - started})
        models[model.name] = figures.model_dump()
        with Store(plan.db) as store:
            store.save_probe_model(stored.id, model.name, models[model.name])
    outcome = ProbeOutcome(dataclasses.replace(stored, models=models), split, estimate)
    if not any(ProbeFigures.model_validate(f).ok for f in models.values()):
        errors = "; ".join(f"{name}: {f['error']}" for name, f in models.items())
        raise BenchselError(
            f"every probe of run {summary.run.id} failed (stored as probe {stored.id}): {errors}"
        )
    return outcome


def _prerequisites(plan: ProbePlan, evalset: EvalSet) -> list[tuple[str, str]]:
    """What every model needs, checked once before any work: the shots, or the training extra."""
    if plan.method == "fewshot":
        from benchsel.probe.fewshot import worked_examples

        return worked_examples(evalset, plan.shots, plan.seed)
    from benchsel.train.pipeline import require_training_extra

    require_training_extra()
    return []


def choose_candidates(summary: RunSummary, plan: ProbePlan) -> list[ModelSummary]:
    """``plan.models``, else the models trainable potential ranks (no constraint excludes them), best
    first, cut to ``plan.top``."""
    from benchsel.selection import select

    if plan.models:
        return [summary.model(name) for name in plan.models]
    ranking = select(summary).trainable
    ranked = [summary.model(e.model) for e in ranking.entries if not e.excluded]
    if not ranked:
        raise UsageError(f"run {summary.run.id} has no model with scored replies to probe")
    return ranked[: plan.top] if plan.top else ranked


def _settings_json(plan: ProbePlan) -> dict[str, Any]:
    out: dict[str, Any] = {"fraction": plan.fraction, "seed": plan.seed, "top": plan.top}
    if plan.method == "fewshot":
        return {**out, "shots": plan.shots}
    settings = pilot_settings(plan)
    return {
        **out,
        "steps": plan.steps,
        "synthetic_n": synthetic_count(plan, settings),
        "train": settings.model_dump(),
    }


def _announce(
    plan: ProbePlan, summary: RunSummary, models: list[ModelSummary], split: Split, stage: StageFn
) -> ProbeEstimate | None:
    """Say how long the probe will take before it starts, where there is no GPU to make it quick."""
    from benchsel.hardware import detect_gpus
    from benchsel.probe.estimate import estimate_probe

    if detect_gpus():
        return None
    estimate = estimate_probe(
        models,
        method=plan.method,
        cases=len(split.probe),
        shots=plan.shots,
        steps=plan.steps,
        examples_per_step=pilot_settings(plan).effective_batch_size,
        rerun_zero_shot=plan.method == "lora" and summary.run.backend != "llamacpp",
    )
    stage(estimate.text())
    return estimate


# ---- running the probe split -------------------------------------------------------------------


def run_options(summary: RunSummary) -> dict[str, Any]:
    stored = summary.run.options if isinstance(summary.run.options, dict) else {}
    options = {key: stored[key] for key in RUN_OPTION_KEYS if key in stored}
    return {**options, "concurrency": int(stored.get("concurrency") or 1)}


def _backend_kwargs(summary: RunSummary, threads: int | None) -> dict[str, Any]:
    run = summary.run
    if run.backend == "ollama":
        return {"backend": "ollama", "host": run.host or None}
    if run.backend == "openai":
        return {"backend": "openai", "base_url": run.host}
    return {"backend": run.backend, "threads": threads}


def _measure(
    plan: ProbePlan,
    summary: RunSummary,
    model: ModelSummary,
    probe_set: EvalSet,
    shots: list[tuple[str, str]],
    stage: StageFn,
) -> ProbeFigures:
    from benchsel import api

    common: dict[str, Any] = {"db": plan.db, **run_options(summary)}
    if plan.method == "fewshot":
        backend = _backend_kwargs(summary, plan.threads)
        before = api.run([model.name], evalset=probe_set, **backend, **common)
        stage(f"  {model.name} with {plan.shots} worked examples in the prompt")
        after = api.run([model.name], evalset=with_shots(probe_set, shots), **backend, **common)
        figures = paired_figures(model.name, before.models[0], after.models[0], seed=plan.seed)
        return figures.model_copy(update={"before_run_id": before.run.id, "after_run_id": after.run.id})
    return train_and_measure(plan, model.name, probe_set, common, stage)


# ---- the pilot LoRA ------------------------------------------------------------------------------


def pilot_settings(plan: ProbePlan) -> TrainSettings:
    """The same settings for every model: the trainer's defaults, the plan's overrides, ``steps``.
    One pass over fresh data, so no epoch ends and early stopping never cuts a pilot short."""
    from pydantic import ValidationError

    from benchsel.train.lora import TrainSettings

    values = {"seed": plan.seed, "epochs": 1.0, **plan.settings, "max_steps": plan.steps}
    try:
        return TrainSettings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"pilot LoRA setting {where}: {err['msg']} (got {err.get('input')!r})") from None


def synthetic_count(plan: ProbePlan, settings: TrainSettings) -> int:
    """Enough synthetic examples that no step sees one twice (plus a tenth for validation)."""
    if plan.synthetic_n is not None:
        return plan.synthetic_n
    return max(20, -(-plan.steps * settings.effective_batch_size * 10 // 9) + 1)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem if name.endswith(".gguf") else name)


def train_and_measure(
    plan: ProbePlan, name: str, cases: EvalSet, common: dict[str, Any], stage: StageFn
) -> ProbeFigures:
    """LoRA-train ``name`` with the plan's settings through the trainer, then benchmark base and base +
    adapter on ``cases`` with llama-server; the pilot LoRA, and the decision study's full LoRA."""
    from benchsel import api
    from benchsel.train.pipeline import TrainPlan, embedded_model, train

    settings = pilot_settings(plan)
    out_root = plan.out_dir or OUT_DIR / "probes" / plan.run_id
    out_dir = out_root / f"{_slug(name)}-{plan.steps}steps"
    reset_peak_rss()
    outcome = train(
        TrainPlan(
            base=name,
            evalset=cases.path,  # the whole eval set: training data is leak-checked against both splits
            settings=settings,
            synthetic_n=synthetic_count(plan, settings),
            seed=plan.seed,
            out_dir=out_dir,
            threads=plan.threads,
            cache_dir=plan.cache_dir,
            db=plan.db,
        ),
        on_stage=lambda text: stage(f"  {text}"),
    )
    engine_model = embedded_model(outcome.base, outcome.out_dir)
    engine: dict[str, Any] = {"backend": "llamacpp", "threads": plan.threads}
    before = api.run([engine_model], evalset=cases, **engine, **common)
    stage(f"  {name} with its adapter ({plan.steps} steps)")
    after = api.run([engine_model], evalset=cases, lora=outcome.adapter_gguf, **engine, **common)
    figures = paired_figures(name, before.models[0], after.models[0], seed=plan.seed)
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
    return figures.model_copy(
        update={"training": training, "before_run_id": before.run.id, "after_run_id": after.run.id}
    )


def reset_peak_rss() -> None:
    """Start the process's peak-RSS count afresh, so each pilot reports its own peak and not the
    largest of the models trained before it in this process (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
