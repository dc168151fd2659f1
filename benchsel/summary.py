"""A stored run, scored: per model its snapshot, memory, quality scores and speed figures.

This is what `run` prints at the end and what `select`, `report` and `compare` read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from benchsel.backends.base import Memory, ModelSnapshot
from benchsel.contention import Contention
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.prefix_cache import ColdPrefill
from benchsel.scoring.scorecard import ModelScore, ReplyInput, score
from benchsel.scoring.speed import SpeedStats, speed_stats
from benchsel.store import RunRecord, Store, StoredResult


@dataclass(frozen=True)
class ModelSummary:
    name: str
    backend: str
    snapshot: ModelSnapshot
    load_s: float | None
    memory: Memory | None
    score: ModelScore
    speed: SpeedStats
    results: tuple[StoredResult, ...]
    error_kinds: dict[str, int]


@dataclass(frozen=True)
class RunSummary:
    run: RunRecord
    evalset: EvalSet
    models: tuple[ModelSummary, ...]

    def model(self, name: str) -> ModelSummary:
        for summary in self.models:
            if summary.name == name:
                return summary
        known = ", ".join(m.name for m in self.models)
        raise UsageError(f"run {self.run.id} has no model '{name}' (it has: {known})")


def evalset_for_run(run: RunRecord, evalset: EvalSet | str | Path | None = None) -> EvalSet:
    """The eval set a run was made with; refuses one whose content changed since."""
    if isinstance(evalset, EvalSet):
        return evalset
    loaded = load_evalset(evalset if evalset is not None else run.evalset_path)
    if evalset is None and loaded.content_hash != run.evalset_hash:
        raise UsageError(
            f"the eval set at {run.evalset_path} changed since run {run.id} was made: "
            "pass --evalset to score it against the current version, or restore the old one"
        )
    return loaded


def summarize_model(
    evalset: EvalSet,
    name: str,
    results: list[StoredResult],
    *,
    backend: str = "",
    snapshot: ModelSnapshot | None = None,
    load_s: float | None = None,
    memory: Memory | None = None,
    strict: bool = False,
    seed: int = 0,
    cold_prefill: ColdPrefill | None = None,
    contention: Contention | None = None,
) -> ModelSummary:
    inputs = [
        ReplyInput(
            r.case_id,
            r.reply.content if r.reply is not None else None,
            repeat=r.repeat,
            error=r.error_kind,
        )
        for r in results
        if r.case_id in evalset.by_id
    ]
    replies = [r.reply for r in results if r.ok and r.reply is not None]
    return ModelSummary(
        name=name,
        backend=backend,
        snapshot=snapshot or ModelSnapshot(name=name, backend=backend, digest=""),
        load_s=load_s,
        memory=memory,
        score=score(evalset, inputs, strict=strict, seed=seed),
        speed=replace(
            speed_stats(replies),
            cold_prefill_tokens_per_s=cold_prefill.tokens_per_s if cold_prefill else None,
            contention=contention,
        ),
        results=tuple(results),
        error_kinds=dict(Counter(r.error_kind for r in results if r.error_kind)),
    )


def summarize_run(
    store: Store,
    run_id: str,
    *,
    evalset: EvalSet | str | Path | None = None,
    strict: bool = False,
    seed: int = 0,
) -> RunSummary:
    run = store.run(run_id)
    loaded = evalset_for_run(run, evalset)
    stored = {m.name: m for m in store.models(run.id)}
    models = []
    for name in run.models:
        results = store.results(run.id, name)
        if not results and name not in stored:
            continue
        model = stored.get(name)
        models.append(
            summarize_model(
                loaded,
                name,
                results,
                backend=model.backend if model else run.backend,
                snapshot=model.snapshot if model else None,
                load_s=model.load_s if model else None,
                memory=model.memory if model else None,
                strict=strict,
                seed=seed,
                cold_prefill=model.cold_prefill if model else None,
                contention=model.contention if model else None,
            )
        )
    return RunSummary(run, loaded, tuple(models))
