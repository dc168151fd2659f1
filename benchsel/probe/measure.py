"""`benchsel probe`: measure each candidate's trainability on a probe split of its run, with the
existing runner, scorer, store and trainer, and store the figures with the run."""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from benchsel.errors import BenchselError, UsageError
from benchsel.probe.figures import METHODS, ProbeFigures, paired_figures
from benchsel.probe.pilot import Pilot, reset_peak_rss, train_pilot
from benchsel.probe.plan import ProbePlan, StageFn, pilot_settings, synthetic_count
from benchsel.probe.split import Split, split_cases, subset, with_shots

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet
    from benchsel.probe.estimate import ProbeEstimate
    from benchsel.records import ModelSnapshot
    from benchsel.store import StoredProbe
    from benchsel.summary import ModelSummary, RunSummary

__all__ = [  # with the plan's and the pilot's names that the decision study and the tests import here
    "ProbeOutcome",
    "ProbePlan",
    "measure_pilot",
    "pilot_settings",
    "probe",
    "reset_peak_rss",
    "run_options",
    "synthetic_count",
    "train_and_measure",
]

# The request options a probe copies from its run, so that zero-shot and probe differ only in the probe.
RUN_OPTION_KEYS = ("temperature", "seed", "num_ctx", "num_predict", "format", "think")


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
    if plan.ray_gpus < 0:
        raise UsageError(f"--ray-gpus {plan.ray_gpus:g}: ask for 0 GPUs or more")


def probe(plan: ProbePlan, *, on_stage: StageFn | None = None) -> ProbeOutcome:
    """Probe the run's candidates (the top of trainable potential, or ``plan.models``) and store it.
    With ``plan.ray`` each model's benchmarks and pilot LoRA run as tasks on that Ray cluster and
    their results are stored here, as a local probe stores them."""
    _validate(plan)
    stage = on_stage or (lambda text: None)
    if plan.ray is None:
        return _probe(plan, stage)
    from benchsel.probe.onray import ray_session

    with ray_session(plan):  # first: the one line that says the extra is missing or the address is wrong
        return _probe(plan, stage)


def _probe(plan: ProbePlan, stage: StageFn) -> ProbeOutcome:
    from benchsel.store import Store, StoredProbe
    from benchsel.summary import summarize_run

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
    shots = _prerequisites(plan, summary, candidates)
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


def _prerequisites(
    plan: ProbePlan, summary: RunSummary, candidates: list[ModelSummary]
) -> list[tuple[str, str]]:
    """What every model needs, checked once before any work: the shots, or the training extra (here,
    or on the Ray nodes, which say so when they lack it); on Ray, nodes that can take the tasks."""
    if plan.ray is not None:
        from benchsel.probe.onray import check_cluster

        check_cluster(plan, summary, candidates)
    if plan.method == "fewshot":
        from benchsel.probe.fewshot import worked_examples

        return worked_examples(summary.evalset, plan.shots, plan.seed)
    if plan.ray is not None:
        return []
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

    gpus = plan.ray_gpus if plan.ray is not None else detect_gpus()  # with --ray, the nodes' GPUs
    if gpus:
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


def _backend_kwargs(summary: RunSummary, plan: ProbePlan) -> dict[str, Any]:
    run, threads = summary.run, plan.threads
    if plan.ray is not None:  # each node serves with its own engine of the run's kind
        from benchsel.probe.onray import ray_backend

        return ray_backend(plan, run.backend)
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
        backend = _backend_kwargs(summary, plan)
        before = api.run([model.name], evalset=probe_set, **backend, **common)
        stage(f"  {model.name} with {plan.shots} worked examples in the prompt")
        after = api.run([model.name], evalset=with_shots(probe_set, shots), **backend, **common)
        figures = paired_figures(model.name, before.models[0], after.models[0], seed=plan.seed)
        return figures.model_copy(update={"before_run_id": before.run.id, "after_run_id": after.run.id})
    return train_and_measure(plan, model.name, probe_set, common, stage, model.snapshot)


# ---- the pilot LoRA ------------------------------------------------------------------------------


def train_and_measure(
    plan: ProbePlan,
    name: str,
    cases: EvalSet,
    common: dict[str, Any],
    stage: StageFn,
    snapshot: ModelSnapshot | None = None,
) -> ProbeFigures:
    """LoRA-train ``name`` with the plan's settings through the trainer, then benchmark base and base +
    adapter on ``cases`` with llama-server; the pilot LoRA, and the decision study's full LoRA. With
    ``plan.ray`` the training is a task on a node and the benchmarks are Ray runs."""
    if plan.ray is not None:
        from benchsel.probe.onray import ray_backend, train_on_ray

        pilot = train_on_ray(plan, name, cases, stage, snapshot)  # snapshot: the memory to ask for
        engine = ray_backend(plan, "llamacpp")
    else:
        # the whole eval set: training data is leak-checked against both splits
        pilot = train_pilot(plan, name, cases.path, stage)
        engine = {"backend": "llamacpp", "threads": plan.threads}
    return measure_pilot(plan, name, pilot, cases, {**engine, **common}, stage)


def measure_pilot(
    plan: ProbePlan, name: str, pilot: Pilot, cases: EvalSet, options: dict[str, Any], stage: StageFn
) -> ProbeFigures:
    """Base and base + adapter on ``cases``, each a run through benchsel.api (``options``: its
    keywords), and the paired figures with the pilot's training."""
    from benchsel import api

    before = api.run([pilot.engine_model], evalset=cases, **options)
    stage(f"  {name} with its adapter ({plan.steps} steps)")
    after = api.run([pilot.engine_model], evalset=cases, lora=pilot.adapter, **options)
    figures = paired_figures(name, before.models[0], after.models[0], seed=plan.seed)
    return figures.model_copy(
        update={"training": pilot.training, "before_run_id": before.run.id, "after_run_id": after.run.id}
    )
