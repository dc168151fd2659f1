"""The loop back: train the base (benchsel.train), benchmark the fine-tune and its base on the eval set
(benchsel.api), and compare the two runs (benchsel.report). ``benchsel train --evaluate`` is
:func:`train_and_evaluate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsel import api
from benchsel.defaults import EVALSET as DEFAULT_EVALSET
from benchsel.evalset import EvalSet, load_evalset
from benchsel.report import Comparison, compare_runs, write_comparison
from benchsel.runner import EventCallback
from benchsel.store import Store
from benchsel.summary import RunSummary, summarize_run
from benchsel.train.lora import ProgressFn
from benchsel.train.pipeline import (
    FromSelection,
    TrainOutcome,
    TrainPlan,
    adapter_label,
    embedded_model,
    ollama_serves,
    serving_tag,
    train,
)

__all__ = ["Evaluation", "LoopOutcome", "evaluate", "train_and_evaluate"]

StageFn = Callable[[str], None]
RUN_OPTION_KEYS = ("temperature", "seed", "num_ctx", "num_predict", "format", "think")
COMPARISON_LABELS = ("base", "fine-tune")


@dataclass(frozen=True)
class Evaluation:
    """The base's run, the fine-tune's run, and their comparison (B = fine-tune minus A = base)."""

    before: RunSummary
    after: RunSummary
    comparison: Comparison
    written: tuple[Path, ...]
    engine: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoopOutcome(TrainOutcome):
    """What training produced, and its evaluation when one was asked for."""

    evaluation: Evaluation | None = None


def train_and_evaluate(
    plan: TrainPlan,
    *,
    on_stage: StageFn | None = None,
    on_progress: ProgressFn | None = None,
    on_event: EventCallback | None = None,
) -> LoopOutcome:
    """Train (benchsel.train.pipeline.train), then, when ``plan.evaluate``, benchmark and compare."""
    outcome = train(plan, on_stage=on_stage, on_progress=on_progress)
    evaluation = evaluate(plan, outcome, on_stage, on_event) if plan.evaluate else None
    return with_evaluation(outcome, evaluation)


def with_evaluation(outcome: TrainOutcome, evaluation: Evaluation | None) -> LoopOutcome:
    fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}
    return LoopOutcome(**fields, evaluation=evaluation)


def evaluate(
    plan: TrainPlan,
    outcome: TrainOutcome,
    stage: StageFn | None = None,
    on_event: EventCallback | None = None,
) -> Evaluation:
    """Run the eval set on the fine-tune (Ollama when it is registered there beside its base, else
    llama-server with ``--lora``), and compare it with the base's run: the selection's run when it was
    made with the same options, or a fresh one (replies stored before are reused)."""
    stage = stage or (lambda text: None)
    given = plan.evalset or DEFAULT_EVALSET
    evalset = outcome.evalset or (given if isinstance(given, EvalSet) else load_evalset(given))
    selection = outcome.selection
    stored = _before_from_selection(plan, selection, evalset)
    options, notes, same = _run_options(plan, stored)
    for note in notes:
        stage(note)
    tag = serving_tag(outcome.base, selection)
    label = adapter_label(plan, outcome.out_dir)
    common = {"evalset": evalset, "db": plan.db, "on_event": on_event, **options}
    if outcome.registered and tag is not None and ollama_serves(plan.host, tag):
        engine, before_model, after_model = "ollama", tag, outcome.registered
        before_kwargs: dict[str, Any] = {"backend": "ollama", "host": plan.host}
        after_kwargs: dict[str, Any] = dict(before_kwargs)
    else:
        engine = "llamacpp"
        before_model = after_model = embedded_model(outcome.base, outcome.out_dir)
        before_kwargs = {"backend": "llamacpp", "threads": plan.threads}
        after_kwargs = {**before_kwargs, "lora": outcome.adapter_gguf, "lora_name": label}
    before = stored if same else None
    if before is None:
        stage(f"Benchmarking the base {before_model} ({engine})")
        before = api.run([before_model], **before_kwargs, **common)
    stage(f"Benchmarking the fine-tune {outcome.fine_tune_name} ({engine})")
    after = api.run([after_model], fresh=True, **after_kwargs, **common)
    comparison = compare_runs(before, after, labels=COMPARISON_LABELS)
    written = write_comparison(comparison, outcome.out_dir, ("md", "html"))
    return Evaluation(before, after, comparison, tuple(written), engine, tuple(notes))


def _before_from_selection(
    plan: TrainPlan, selection: FromSelection | None, evalset: EvalSet
) -> RunSummary | None:
    """The selection's run, narrowed to the winner, when it was made on this eval set."""

    if selection is None or selection.evalset_hash != evalset.content_hash:
        return None
    with Store(plan.db) as store:
        summary = summarize_run(store, selection.run_id, evalset=evalset)
    winner = summary.model(selection.winner)
    return dataclasses.replace(summary, models=(winner,))


def _run_options(plan: TrainPlan, before: RunSummary | None) -> tuple[dict[str, Any], list[str], bool]:
    """The options of the two evaluation runs, what to say about where they came from, and whether the
    stored base run was made with them. The base run's options are taken (so the runs are alike) unless
    given on the command line, which wins."""
    given = {"limit": plan.eval_limit, "num_predict": plan.eval_num_predict}
    if before is None:
        return given, [], False
    stored_all = before.run.options if isinstance(before.run.options, dict) else {}
    stored = {key: stored_all[key] for key in RUN_OPTION_KEYS if key in stored_all}
    stored["limit"] = stored_all.get("limit")
    options = dict(stored)
    taken, differ = [], []
    for key, value in given.items():
        if value is None:
            taken.append(f"{key} {stored.get(key, 'default')}")
        elif value != stored.get(key):
            options[key] = value
            differ.append(f"{key} {value} (the selection's run: {stored.get(key, 'default')})")
    notes = [f"From the selection's run {before.run.id}: " + ", ".join(taken)] if taken else []
    if differ:
        notes.append(
            "The base is benchmarked again with " + ", ".join(differ) + "; stored replies are reused"
        )
    return options, notes, not differ
