"""A stored run, scored: per model its snapshot, memory, quality scores and speed figures.

This is what `run` prints at the end and what `select`, `report` and `compare` read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from benchsel.contention import Contention
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.records import ColdPrefill, Memory, ModelSnapshot
from benchsel.scoring.scorecard import ModelScore, ReplyInput, score
from benchsel.scoring.speed import SpeedStats, speed_stats
from benchsel.store import RunRecord, Store, StoredModel, StoredResult


@dataclass(frozen=True)
class HostFigures:
    """A model's speed and memory on one host of a multi-host run: never averaged across hosts."""

    host: str
    replies: int
    speed: SpeedStats
    memory: Memory | None
    load_s: float | None
    error: str | None  # why the host stopped serving the model; its cases moved on


def short_name(model: str) -> str:
    """What tables call a model: a path to a ``.gguf`` file by its file stem (the full path stays in
    the store and the snapshot); any other name as it is."""
    if model.lower().endswith(".gguf"):
        return Path(model).stem or model
    return model


@dataclass(frozen=True)
class ModelSummary:
    name: str
    """The model as the backend knows it (a tag, a demo name, the path to a .gguf file)."""
    backend: str
    snapshot: ModelSnapshot
    load_s: float | None
    memory: Memory | None
    score: ModelScore
    speed: SpeedStats
    results: tuple[StoredResult, ...]
    error_kinds: dict[str, int]
    host: str = ""  # in a multi-host run, the host whose figures speed, memory and load_s are
    hosts: tuple[HostFigures, ...] = ()  # every host that served the model, when more than one did

    def host_note(self) -> str | None:
        """Where the model ran when that was more than one host, and why it moved."""
        if not self.hosts:
            return None
        parts = []
        for figures in self.hosts:
            tps = figures.speed.decode_tokens_per_s
            speed = f", {tps:.1f} tok/s" if tps else ""
            failed = f", failed: {figures.error}" if figures.error else ""
            parts.append(f"{figures.host} ({figures.replies} replies{speed}{failed})")
        return f"{self.display_name} ran on " + "; then ".join(parts) + f"; figures shown are {self.host}'s"

    label: str = ""
    """The short name every table shows (see :func:`short_name`); empty means ``name``."""

    @property
    def display_name(self) -> str:
        return self.label or self.name

    @property
    def failed(self) -> bool:
        """No reply could be scored: the model has no score, only its errors."""
        return self.score.replies == 0

    @property
    def error_counts(self) -> str:
        """Each error class with its count: "2 transport:timeout, 1 rejected:http_400"."""
        return ", ".join(f"{count} {kind}" for kind, count in sorted(self.error_kinds.items()))

    @property
    def failure(self) -> str | None:
        """Why a failed model has no score, with each error class and its count; None when it has one."""
        if not self.failed:
            return None
        failed = sum(self.error_kinds.values())
        if not failed:
            return "failed: no reply to a case of this eval set"
        plural = "s" if failed != 1 else ""
        return f"failed: {failed} request{plural} failed ({self.error_counts}), no scored reply"

    @property
    def first_error(self) -> str | None:
        """The first stored error message, to say what went wrong in the server's words."""
        return next((r.error_message for r in self.results if r.error_message), None)


@dataclass(frozen=True)
class RunSummary:
    run: RunRecord
    evalset: EvalSet
    models: tuple[ModelSummary, ...]

    @property
    def failed_models(self) -> tuple[ModelSummary, ...]:
        return tuple(m for m in self.models if m.failed)

    @property
    def nothing_scored(self) -> bool:
        """True when there were models and none produced a scored reply: the run failed."""
        return bool(self.models) and all(m.failed for m in self.models)

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
        label=short_name(name),
    )


def summary_of_score(name: str, score: ModelScore, *, backend: str = "") -> ModelSummary:
    """A summary of replies scored without a run (predictions made elsewhere): no speed, no memory."""
    return ModelSummary(
        name=name,
        backend=backend,
        snapshot=ModelSnapshot(name=name, backend=backend, digest=""),
        load_s=None,
        memory=None,
        score=score,
        speed=speed_stats([]),
        results=(),
        error_kinds={},
        label=name,
    )


def _unique_labels(models: list[ModelSummary]) -> list[ModelSummary]:
    """Two .gguf files with the same stem (a/model.gguf, b/model.gguf) keep their parent folder in the
    short name, and if that still collides, the whole path, so no two rows read the same."""
    counts = Counter(m.display_name for m in models)
    out = []
    for m in models:
        if counts[m.display_name] > 1 and m.display_name != m.name:
            path = Path(m.name)
            m = replace(m, label=f"{path.parent.name}/{path.stem}" if path.parent.name else m.name)
        out.append(m)
    counts = Counter(m.display_name for m in out)
    return [replace(m, label=m.name) if counts[m.display_name] > 1 else m for m in out]


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
    rows = store.models(run.id)
    stored = {m.name: m for m in rows}
    models = []
    for name in run.models:
        results = store.results(run.id, name)
        if not results and name not in stored:
            continue
        model = stored.get(name)
        summary = summarize_model(
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
        models.append(_pin_to_hosts(summary, [m for m in rows if m.name == name]))
    stored_cases = {r.case_id for m in models for r in m.results}
    if evalset is not None and stored_cases and stored_cases.isdisjoint(loaded.by_id):
        raise UsageError(
            f"run {run.id} has no reply to any case of eval set '{loaded.name}' (no case id in common) "
            f"- pass the eval set the run was made with ({run.evalset_name}), or leave out --evalset"
        )
    return RunSummary(run, loaded, tuple(_unique_labels(models)))


def _pin_to_hosts(summary: ModelSummary, rows: list[StoredModel]) -> ModelSummary:
    """Speed and memory of the host that answered most; each host's own figures beside them."""
    hosts = [row for row in rows if row.host]
    if not hosts:
        return summary
    answered = {
        row.host: [r.reply for r in summary.results if r.host == row.host and r.ok and r.reply is not None]
        for row in hosts
    }
    figures = tuple(
        HostFigures(
            row.host,
            len(answered[row.host]),
            speed_stats(answered[row.host]),
            row.memory,
            row.load_s,
            row.host_error,
        )
        for row in hosts
    )
    main = max(hosts, key=lambda row: len(answered[row.host]))
    return replace(
        summary,
        snapshot=main.snapshot,
        backend=main.backend,
        load_s=main.load_s,
        memory=main.memory,
        speed=speed_stats(answered[main.host]),
        host=main.host,
        hosts=figures if len(hosts) > 1 or main.host_error else (),
    )
