"""The two rankings of a scored run, deploy-now and trainable potential, the reasons for each place,
and the Selection they make."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from benchsel import hardware
from benchsel.defaults import MOSTLY_THINKING
from benchsel.errors import UsageError
from benchsel.hardware import format_bytes
from benchsel.records import ModelSnapshot
from benchsel.scoring.registry import get_metric
from benchsel.selection.checks import Checks, TrainingFit, check
from benchsel.selection.close_call import CloseCall, close_call
from benchsel.selection.options import (
    DEFAULT_WEIGHTS,
    MAIN_METRIC,
    WEIGHT_KEYS,
    WEIGHT_METRIC,
    Constraints,
    RankingName,
    Weights,
)
from benchsel.selection.record import SELECTION_VERSION, SelectionRecord, TrainBase
from benchsel.summary import ModelSummary, RunSummary

TIE_DECIMALS = 4  # scores equal to this many decimals are a tie, and only then does speed decide


def metric_values(model: ModelSummary) -> dict[str, float]:
    """Every metric either score uses, by weight name (read through the metric registry)."""
    values = {}
    for key in WEIGHT_KEYS:
        value = get_metric(WEIGHT_METRIC.get(key, key)).read(model)
        values[key] = float(value) if value is not None else 0.0
    return values


def weighted_score(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total = sum(weights.values())
    return sum(values[key] * w for key, w in weights.items()) / total


@dataclass(frozen=True)
class Entry:
    model: str
    """The model as the backend knows it (for a .gguf file, its path)."""
    label: str
    """The short name tables show."""
    score: float
    rank: int | None
    excluded: bool
    exclusions: tuple[str, ...]
    metrics: dict[str, float]
    vram: hardware.VramFigure | None
    headroom_bytes: int | None
    training: TrainingFit | None
    decode_tokens_per_s: float | None
    thinking_share: float
    flags: tuple[str, ...]
    reason: str
    found_gold: bool = True
    """At least one gold entity or relationship found in the view this ranking scores: without it a
    score comes from format alone, and the model cannot win."""

    @property
    def can_win(self) -> bool:
        return not self.excluded and self.found_gold and self.score > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "label": self.label,
            "rank": self.rank,
            "score": round(self.score, 6),
            "excluded": self.excluded,
            "exclusions": list(self.exclusions),
            "reason": self.reason,
            "flags": list(self.flags),
            "metrics": {k: round(v, 6) for k, v in self.metrics.items()},
            "vram": _vram_json(self.vram, self.headroom_bytes),
            "training": vars(self.training) if self.training else None,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "thinking_share": round(self.thinking_share, 6),
            "found_gold": self.found_gold,
        }


def _vram_json(figure: hardware.VramFigure | None, headroom: int | None) -> dict[str, Any] | None:
    if figure is None:
        return None
    return {
        "bytes_needed": figure.bytes_needed,
        "label": figure.label,
        "estimated_bytes": figure.estimated_bytes,
        "measured_bytes": figure.measured_bytes,
        "headroom_bytes": headroom,
    }


@dataclass(frozen=True)
class Ranking:
    name: RankingName
    entries: tuple[Entry, ...]
    close_call: CloseCall | None
    failed: tuple[str, ...] = ()
    """Models with no scored reply: not ranked, named so "no winner" can say why."""

    @property
    def winner(self) -> Entry | None:
        """The top entry, when it meets the constraints and scored above zero on the task itself."""
        top = next((e for e in self.entries if not e.excluded), None)
        return top if top is not None and top.can_win else None

    @property
    def no_winner(self) -> str | None:
        """Why there is no winner (None when there is one): one line for a person."""
        if self.winner is not None:
            return None
        view = "in its recovered answers" if self.name == "trainable_potential" else "in valid JSON"
        if not self.entries:
            return f"no winner: every model failed ({', '.join(self.failed)}): no reply could be scored"
        if all(e.excluded for e in self.entries):
            return "no winner: no model meets the constraints (see each model's exclusion)"
        return (
            "no winner: no candidate has a score above zero on the task - none found a gold entity or "
            f"relationship {view}, so any score left comes from format alone; check the prompt, "
            "--num-predict and the replies in the report"
        )

    def entry(self, model: str) -> Entry:
        for e in self.entries:
            if e.model == model:
                return e
        raise UsageError(f"no model '{model}' in the {self.name} ranking")

    def to_json(self) -> dict[str, Any]:
        winner = self.winner
        return {
            "winner": winner.model if winner else None,
            "no_winner": self.no_winner,
            "main_metric": MAIN_METRIC[self.name],
            "close_call": self.close_call.to_json() if self.close_call else None,
            "entries": [e.to_json() for e in self.entries],
        }


def _quality_text(name: RankingName, m: Mapping[str, float], model: ModelSummary) -> str:
    invalid = 1.0 - m["valid_json"]
    share = model.speed.thinking_share
    if name == "deploy_now":
        text = (
            f"as-is entity F1 {m['as_is_entity_f1']:.2f}, relationship F1 {m['as_is_relationship_f1']:.2f}, "
            f"{m['as_is_valid_json']:.0%} valid JSON"
        )
        return text + (
            f"; {share:.0%} of output was reasoning before any JSON" if share >= MOSTLY_THINKING else ""
        )
    if share >= MOSTLY_THINKING:
        return (
            f"{share:.0%} of its output was reasoning before any JSON; content recall "
            f"{m['content_entity_recall']:.2f}, {m['valid_json']:.0%} valid JSON"
        )
    text = (
        f"content recall {m['content_entity_recall']:.2f}, relationship F1 {m['content_relationship_f1']:.2f}"
    )
    if model.score.has_format_debt:
        return f"{text} but {invalid:.0%} invalid JSON: format debt that LoRA fixes cheaply"
    return f"{text}, {m['valid_json']:.0%} valid JSON"


def _rank(
    name: RankingName,
    models: Sequence[ModelSummary],
    checks: Mapping[str, Checks],
    weights: Weights,
) -> list[Entry]:
    w = weights.of_ranking(name)
    rows = []
    for model in models:
        c = checks[model.name]
        exclusions = c.deploy_exclusions + (c.training_exclusions if name == "trainable_potential" else ())
        values = metric_values(model)
        rows.append((model, c, exclusions, values, weighted_score(values, w)))

    def key(row: tuple[ModelSummary, Checks, tuple[str, ...], dict[str, float], float]) -> tuple[Any, ...]:
        model, _, exclusions, _, score = row
        return (
            bool(exclusions),
            not found_gold(name, model),  # a score from format alone ranks below any found answer
            -round(score, TIE_DECIMALS),
            -(model.speed.decode_tokens_per_s or 0.0),
            model.name,
        )

    rows.sort(key=key)
    entries = []
    rank = 0
    for i, (model, c, exclusions, values, score) in enumerate(rows):
        excluded = bool(exclusions)
        rank += 0 if excluded else 1
        reason = (
            f"excluded: {'; '.join(exclusions)}"
            if excluded
            else f"{c.fit_text}; {_quality_text(name, values, model)}"
        )
        tie = _tie_text(rows, i) if not excluded else None
        if tie:
            reason += f"; {tie}"
        if name == "trainable_potential" and c.training is not None and c.training.fits:
            reason += f"; {c.training.method} training fits ({format_bytes(c.training.needed_bytes)})"
        found = found_gold(name, model)
        if not excluded and not found:
            reason += "; found no gold entity or relationship, so it cannot win"
        entries.append(
            Entry(
                model=model.name,
                label=model.display_name,
                score=score,
                rank=None if excluded else rank,
                excluded=excluded,
                exclusions=exclusions,
                metrics={k: values[k] for k in w},
                vram=c.vram,
                headroom_bytes=c.headroom_bytes,
                training=c.training,
                decode_tokens_per_s=model.speed.decode_tokens_per_s,
                thinking_share=model.speed.thinking_share,
                flags=c.flags,
                reason=reason,
                found_gold=found,
            )
        )
    return entries


def found_gold(name: RankingName, model: ModelSummary) -> bool:
    """Whether the model found any gold entity or relationship in the view ``name`` scores."""
    view = model.score.content if name == "trainable_potential" else model.score.as_is
    return view.entities.counts.tp + view.relationships.counts.tp > 0


def _tie_text(
    rows: Sequence[tuple[ModelSummary, Checks, tuple[str, ...], dict[str, float], float]], i: int
) -> str | None:
    mine = round(rows[i][4], TIE_DECIMALS)
    tied = [
        r[0].name for j, r in enumerate(rows) if j != i and not r[2] and round(r[4], TIE_DECIMALS) == mine
    ]
    if not tied:
        return None
    return f"tied on score with {', '.join(tied)}: decode speed breaks the tie"


class Ranked(Protocol):
    @property
    def model(self) -> str: ...


class ThirdRanking(Protocol):
    """What a Selection needs of the measured-trainability ranking (benchsel.probe, which builds on
    selection): its winner and its JSON."""

    @property
    def winner(self) -> Ranked | None: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FailedModel:
    """A model with no scored reply: it has no score and is in neither ranking."""

    model: str
    label: str
    failure: str


@dataclass(frozen=True)
class Selection:
    run_id: str
    evalset_name: str
    evalset_hash: str
    constraints: Constraints
    weights: Weights
    trainable: Ranking
    deploy_now: Ranking
    snapshots: Mapping[str, ModelSnapshot]
    created_at: str
    evalset_path: str | None = None
    failed: tuple[FailedModel, ...] = ()
    measured: ThirdRanking | None = None
    """The third ranking, from the run's latest probe (a benchsel.probe.MeasuredRanking); None until one
    is made."""

    @property
    def train_winner(self) -> Entry | None:
        return self.trainable.winner

    @property
    def deploy_winner(self) -> Entry | None:
        return self.deploy_now.winner

    def record(self) -> SelectionRecord:
        """What selection.json holds, as the typed record `load_selection` reads back."""
        train = self.train_winner
        deploy = self.deploy_winner
        data: dict[str, Any] = {
            "version": SELECTION_VERSION,
            "created_at": self.created_at,
            "run_id": self.run_id,
            "evalset": {"name": self.evalset_name, "hash": self.evalset_hash, "path": self.evalset_path},
            "winners": {
                "train": train.model if train else None,
                "deploy_now": deploy.model if deploy else None,
            },
            "train_base": _base_json(self.snapshots[train.model]) if train else None,
            "constraints": self.constraints.model_dump(),
            "weights": self.weights.model_dump(),
            "rankings": {
                "trainable_potential": self.trainable.to_json(),
                "deploy_now": self.deploy_now.to_json(),
            },
            "failed": [vars(f) for f in self.failed],
        }
        if self.measured is not None:  # the third ranking, once the run has been probed (benchsel.probe)
            winner = self.measured.winner
            data["winners"]["measured_trainability"] = winner.model if winner else None
            data["rankings"]["measured_trainability"] = self.measured.to_json()
        return SelectionRecord.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.record().model_dump(mode="json")


def _base_json(snapshot: ModelSnapshot) -> dict[str, Any]:
    """What `benchsel train` needs to resolve the base's weights."""
    return {key: getattr(snapshot, key) for key in TrainBase.model_fields}


def select(
    summary: RunSummary,
    constraints: Constraints | None = None,
    weights: Weights = DEFAULT_WEIGHTS,
    *,
    seed: int = 0,
) -> Selection:
    """Rank the models of a scored run for training and for deploying now, under ``constraints``.
    A model with no scored reply is in neither ranking: it is listed as failed."""
    constraints = constraints or Constraints()
    if not summary.models:
        raise UsageError(f"run {summary.run.id} has no scored models - run `benchsel run` first")
    run_num_ctx = summary.run.options.get("num_ctx") if isinstance(summary.run.options, dict) else None
    scored = [m for m in summary.models if not m.failed]
    failed = tuple(FailedModel(m.name, m.display_name, m.failure or "failed") for m in summary.failed_models)
    checks = {
        m.name: check(m, constraints, run_num_ctx if isinstance(run_num_ctx, int) else None) for m in scored
    }
    by_name = {m.name: m for m in scored}
    rankings: dict[RankingName, Ranking] = {}
    names: tuple[RankingName, ...] = ("trainable_potential", "deploy_now")
    for name in names:
        entries = _rank(name, scored, checks, weights)
        rankings[name] = Ranking(
            name,
            tuple(entries),
            close_call(name, [by_name[e.model] for e in entries if e.can_win][:2], seed),
            tuple(f.label for f in failed),
        )
    return Selection(
        run_id=summary.run.id,
        evalset_name=summary.evalset.name,
        evalset_hash=summary.evalset.content_hash,
        constraints=constraints,
        weights=weights,
        trainable=rankings["trainable_potential"],
        deploy_now=rankings["deploy_now"],
        snapshots={m.name: m.snapshot for m in summary.models},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        evalset_path=str(summary.evalset.path.resolve()),
        failed=failed,
    )
