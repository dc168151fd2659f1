"""Choosing the base model: hardware constraints first, then two rankings of a scored run.

*Deploy-now* ranks what each model delivers today (as-is quality); *trainable potential* ranks what a
LoRA can build on (content quality, with the easy-to-train skills discounted). docs/selection.md
explains every weight and the worked motivating case.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchsel import defaults, hardware
from benchsel.backends.base import Backend
from benchsel.defaults import MOSTLY_THINKING
from benchsel.errors import BenchselError, UsageError
from benchsel.evalset import EvalSet
from benchsel.hardware import format_bytes
from benchsel.records import ModelSnapshot
from benchsel.scoring.metrics import Estimate, paired_bootstrap
from benchsel.scoring.registry import get_metric
from benchsel.summary import ModelSummary, RunSummary

__all__ = [
    "DEFAULT_WEIGHTS",
    "SELECTION_VERSION",
    "Candidate",
    "CloseCall",
    "FailedModel",
    "Constraints",
    "Entry",
    "Ranking",
    "Selection",
    "SelectionRecord",
    "Weights",
    "describe_candidates",
    "evalset_for_training",
    "load_selection",
    "load_weights",
    "parse_weight_overrides",
    "select",
    "write_selection",
]

SELECTION_VERSION = 2
TIE_DECIMALS = 4  # scores equal to this many decimals are a tie, and only then does speed decide
RankingName = Literal["trainable_potential", "deploy_now"]


def _validated(cls: type[BaseModel], data: Mapping[str, Any], what: str) -> Any:
    """Build a pydantic record, turning a validation error into a UsageError with the fix."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or what
        if err["type"] == "extra_forbidden":
            valid = ", ".join(cls.model_fields)
            raise UsageError(f"unknown {what} '{where}' - valid names: {valid}") from None
        if not err["loc"]:  # a check across fields: its message says what to change
            raise UsageError(str(err["msg"]).removeprefix("Value error, ")) from None
        raise UsageError(f"{what} '{where}': {err['msg']} (got {err.get('input')!r})") from None


# ---------------------------------------------------------------- constraints and weights


class Constraints(BaseModel):
    """What the deployment (and, optionally, the training) hardware allows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vram_bytes: int | None = Field(default=None, gt=0)
    """The GPU's memory; None ranks without a VRAM check (every entry says so)."""
    reserve_bytes: int = Field(default=0, ge=0)
    """Memory kept for models that stay loaded beside this one."""
    num_ctx: int = Field(default=defaults.NUM_CTX, gt=0)
    parallel: int = Field(default=1, gt=0)
    kv_cache: hardware.KvCacheType = "f16"
    margin_bytes: int = Field(default=hardware.DEFAULT_GPU_MARGIN_BYTES, ge=0)
    """Free memory llama.cpp keeps per GPU; added to estimates, not to measured figures."""
    min_tps: float | None = Field(default=None, ge=0)
    """Lowest acceptable decode speed (tokens per second)."""
    train_vram_bytes: int | None = Field(default=None, gt=0)
    """Memory of the training GPU; when given, trainable potential excludes models that cannot train."""
    method: hardware.TrainMethod = "lora"

    @model_validator(mode="after")
    def _reserve_below_budget(self) -> Constraints:
        if self.vram_bytes is not None and self.reserve_bytes >= self.vram_bytes:
            raise ValueError(
                "the reserve must be smaller than the VRAM budget - lower --reserve or raise --vram"
            )
        return self

    @property
    def available_bytes(self) -> int | None:
        return None if self.vram_bytes is None else self.vram_bytes - self.reserve_bytes

    def describe(self) -> str:
        """One line for a person: "VRAM 8.0 GiB, reserve 3.0 GiB, num_ctx 4096 x 1, KV f16"."""
        parts = [
            f"VRAM {hardware.format_bytes(self.vram_bytes)}" if self.vram_bytes else "VRAM not checked",
            f"reserve {hardware.format_bytes(self.reserve_bytes)}",
            f"num_ctx {self.num_ctx} x {self.parallel}",
            f"KV {self.kv_cache}",
        ]
        if self.min_tps is not None:
            parts.append(f"min {self.min_tps:g} tok/s")
        if self.train_vram_bytes is not None:
            parts.append(f"train {self.method} in {hardware.format_bytes(self.train_vram_bytes)}")
        return ", ".join(parts)

    @classmethod
    def of(cls, **values: Any) -> Constraints:
        """Like the constructor, but a bad value raises UsageError naming the field."""
        result: Constraints = _validated(cls, values, "constraint")
        return result


class Weights(BaseModel):
    """The named weights of both scores. Each score is the weighted mean of its metrics (weights
    need not sum to 1). docs/selection.md says why each weight is what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # trainable potential: what LoRA cannot cheaply teach weighs most
    content_entity_recall: float = Field(default=0.40, ge=0)
    """Entities found in the recovered answer: understanding the text, the hardest thing to train."""
    content_relationship_f1: float = Field(default=0.25, ge=0)
    """Relationships right in the recovered answer: reading who does what to whom."""
    content_entity_f1: float = Field(default=0.20, ge=0)
    """Entity precision and recall together; precision is partly convention, which trains easily."""
    valid_json: float = Field(default=0.05, ge=0)
    """Whole reply parses as JSON: the format LoRA fixes in a few hundred examples."""
    schema_valid: float = Field(default=0.05, ge=0)
    """Reply follows the schema: also format, also cheap to train."""
    no_thinking_leak: float = Field(default=0.05, ge=0)
    """1 - share of output spent before any JSON: a habit training (or a template) can remove."""
    # deploy-now: what you get today
    as_is_entity_f1: float = Field(default=0.45, ge=0)
    """Entity F1 of the replies as delivered (an unparseable reply predicts nothing)."""
    as_is_relationship_f1: float = Field(default=0.35, ge=0)
    """Relationship F1 of the replies as delivered."""
    as_is_valid_json: float = Field(default=0.20, ge=0)
    """Share of replies a program can parse without repair."""

    @model_validator(mode="after")
    def _each_score_has_weight(self) -> Weights:
        for name, keys in SCORE_METRICS.items():
            if not any(getattr(self, key) > 0 for key in keys):
                raise ValueError(
                    f"every {name} weight is 0 - give at least one of {', '.join(keys)} a weight"
                )
        for key in type(self).model_fields:
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"weight {key} must be a finite number")
        return self

    @classmethod
    def of(cls, **values: Any) -> Weights:
        result: Weights = _validated(cls, values, "weight")
        return result

    def of_ranking(self, ranking: RankingName) -> dict[str, float]:
        return {key: float(getattr(self, key)) for key in SCORE_METRICS[ranking]}


SCORE_METRICS: dict[RankingName, tuple[str, ...]] = {
    "trainable_potential": (
        "content_entity_recall",
        "content_relationship_f1",
        "content_entity_f1",
        "valid_json",
        "schema_valid",
        "no_thinking_leak",
    ),
    "deploy_now": ("as_is_entity_f1", "as_is_relationship_f1", "as_is_valid_json"),
}
WEIGHT_KEYS = tuple(dict.fromkeys(key for keys in SCORE_METRICS.values() for key in keys))
# A weight is named after the registered metric it weighs, except where one metric has a weight in each
# score.
WEIGHT_METRIC = {"as_is_valid_json": "valid_json"}
# The metric a close call is judged on: the heaviest-weighted default of each score.
MAIN_METRIC: dict[RankingName, str] = {
    "trainable_potential": "content_entity_recall",
    "deploy_now": "as_is_entity_f1",
}
DEFAULT_WEIGHTS = Weights()


def parse_weight_overrides(pairs: Iterable[str], base: Weights = DEFAULT_WEIGHTS) -> Weights:
    """Apply ``name=value`` overrides (from ``--weight``) to ``base``."""
    values = base.model_dump()
    valid = ", ".join(Weights.model_fields)
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"cannot use weight {pair!r} - write NAME=VALUE with NAME one of: {valid}")
        if name not in Weights.model_fields:
            raise UsageError(f"unknown weight '{name}' - valid names: {valid}")
        try:
            values[name] = float(raw)
        except ValueError:
            raise UsageError(f"weight {name}={raw!r} is not a number - e.g. {name}=0.4") from None
    return Weights.of(**values)


def load_weights(path: str | Path, base: Weights = DEFAULT_WEIGHTS) -> Weights:
    """Weights from a TOML or JSON file: top-level keys or a ``[weights]`` table; missing keys keep
    ``base``'s values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be read ({exc.strerror}) - give a TOML or JSON weights file"
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must hold a table of NAME = VALUE weights")
    return Weights.of(**{**base.model_dump(), **data})


# ---------------------------------------------------------------- per-model checks


@dataclass(frozen=True)
class TrainingFit:
    method: str
    needed_bytes: int
    fits: bool
    headroom_bytes: int


@dataclass(frozen=True)
class Checks:
    """What the constraints say about one model, before any ranking."""

    vram: hardware.VramFigure | None
    headroom_bytes: int | None
    deploy_exclusions: tuple[str, ...]
    training: TrainingFit | None
    training_exclusions: tuple[str, ...]
    flags: tuple[str, ...]
    fit_text: str


def _measured(model: ModelSummary) -> hardware.MeasuredVram | None:
    memory = model.memory
    if memory is None or memory.size_bytes <= 0:
        return None
    vram = memory.size_vram_bytes if memory.size_vram_bytes is not None else memory.size_bytes
    return hardware.MeasuredVram(memory.size_bytes, vram, memory.source)


def _estimate(snapshot: ModelSnapshot, c: Constraints) -> tuple[hardware.VramEstimate | None, str | None]:
    if not snapshot.model_info or not snapshot.size_bytes:
        return None, "no model_info or file size to estimate VRAM from"
    try:
        estimate = hardware.estimate_inference_vram(
            snapshot.model_info,
            file_size_bytes=snapshot.size_bytes,
            num_ctx=c.num_ctx,
            parallel=c.parallel,
            kv_cache=c.kv_cache,
            has_projector=snapshot.has_projector,
            margin_bytes=c.margin_bytes,
        )
    except UsageError as exc:
        return None, f"VRAM estimate failed: {exc}"
    return estimate, None


def vram_of(
    model: ModelSummary, c: Constraints, run_num_ctx: int | None
) -> tuple[hardware.VramFigure | None, list[str]]:
    """The figure to decide with: measured beats estimated, unless it was measured at another context."""
    notes: list[str] = []
    estimate, problem = _estimate(model.snapshot, c)
    measured = _measured(model)
    if measured is not None and estimate is not None and run_num_ctx not in (None, c.num_ctx):
        notes.append(f"measured at num_ctx {run_num_ctx}, not {c.num_ctx}: the estimate is used")
        measured = None
    if measured is not None and measured.spilled_to_cpu:
        notes.append(
            f"partly on CPU when measured ({hardware.format_bytes(measured.size_vram_bytes)} in VRAM)"
        )
    if measured is None and estimate is None:
        notes.append(problem or "no VRAM figure")
        return None, notes
    return hardware.vram_figure(estimate, measured), notes


def _training_fit(snapshot: ModelSnapshot, c: Constraints) -> tuple[TrainingFit | None, str | None]:
    if c.train_vram_bytes is None:
        return None, None
    try:
        estimate = hardware.training_memory_from_model_info(
            snapshot.model_info, parameter_count=snapshot.parameter_count, method=c.method
        )
    except UsageError as exc:
        return None, f"training memory unknown: {exc}"
    result = hardware.fits(estimate.total_bytes, c.train_vram_bytes)
    return TrainingFit(c.method, estimate.total_bytes, result.fits, result.headroom_bytes), None


def check(model: ModelSummary, c: Constraints, run_num_ctx: int | None = None) -> Checks:
    """Apply the constraints to one model."""
    figure, flags = vram_of(model, c, run_num_ctx)
    exclusions: list[str] = []
    headroom = None
    budget = _budget_text(c)
    if figure is None:
        fit_text = "VRAM unknown"
    elif c.vram_bytes is None:
        fit_text = f"needs {format_bytes(figure.bytes_needed)} ({figure.label}), VRAM not checked"
    else:
        fit = hardware.fits(figure, c.vram_bytes, c.reserve_bytes)
        headroom = fit.headroom_bytes
        if fit.fits:
            fit_text = (
                f"fits {budget} with {format_bytes(headroom)} to spare at num_ctx {c.num_ctx}, {figure.label}"
            )
        else:
            fit_text = f"needs {format_bytes(figure.bytes_needed)} ({figure.label}) at num_ctx {c.num_ctx}"
            exclusions.append(
                f"needs {format_bytes(figure.bytes_needed)} ({figure.label}) but {budget} leaves "
                f"{format_bytes(fit.available_bytes)}"
            )
    tps = model.speed.decode_tokens_per_s
    if c.min_tps is not None:
        if tps is None:
            flags.append("decode speed not measured: --min-tps not checked")
        elif tps < c.min_tps:
            exclusions.append(f"decodes {tps:.1f} tok/s, below --min-tps {c.min_tps:g}")
        if tps is not None and model.speed.contended:
            flags.append(
                "--min-tps judged on a decode speed measured under CPU contention (re-run when quiet)"
            )
    training, problem = _training_fit(model.snapshot, c)
    training_exclusions: list[str] = []
    if problem:
        flags.append(problem)
    if training is not None and not training.fits and c.train_vram_bytes is not None:
        training_exclusions.append(
            f"{training.method} training needs {format_bytes(training.needed_bytes)}, "
            f"more than --train-vram {format_bytes(c.train_vram_bytes)}"
        )
    flags.extend(_behaviour_flags(model))
    return Checks(
        figure, headroom, tuple(exclusions), training, tuple(training_exclusions), tuple(flags), fit_text
    )


def _budget_text(c: Constraints) -> str:
    if c.vram_bytes is None:
        return "no VRAM budget"
    if c.reserve_bytes:
        return f"{format_bytes(c.vram_bytes)} - {format_bytes(c.reserve_bytes)} reserve"
    return format_bytes(c.vram_bytes)


def _behaviour_flags(model: ModelSummary) -> list[str]:
    flags = []
    speed = model.speed
    if speed.thinking_share >= MOSTLY_THINKING:
        flags.append(f"thinking: {speed.thinking_share:.0%} of its output came before any JSON")
    if speed.truncated:
        flags.append(f"{speed.truncated}/{speed.replies} replies hit num_predict")
    if model.score.errors:
        flags.append(f"{model.score.errors} requests failed")
    return flags


# ---------------------------------------------------------------- scores and rankings


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
class CloseCall:
    """The top two cannot be told apart on the main metric: the paired bootstrap interval of their
    difference on the same cases includes zero. (Overlapping marginal intervals decide nothing: two
    models can overlap and still differ reliably case by case.)"""

    metric: str
    first: str
    second: str
    difference: Estimate
    """First minus second on the shared cases, with its 95% paired bootstrap interval."""
    cases: int

    def text(self) -> str:
        d = self.difference
        return (
            f"{self.first} and {self.second} cannot be told apart on {self.metric}: the paired bootstrap "
            f"difference on the same {self.cases} cases is {d:+.2f}, an interval that includes 0"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "first": self.first,
            "second": self.second,
            "difference": vars(self.difference),
            "cases": self.cases,
            "text": self.text(),
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


def close_call(
    name: RankingName, entries: Sequence[Entry], by_name: Mapping[str, ModelSummary], seed: int = 0
) -> CloseCall | None:
    """The top two models that could win, on the main metric, when the paired bootstrap interval of
    their difference includes zero; None when it excludes zero (the order is real) or there is no such
    pair (two models that both found nothing are not a close call: neither can win)."""
    eligible = [e for e in entries if e.can_win][:2]
    if len(eligible) < 2:
        return None
    metric = get_metric(MAIN_METRIC[name])
    assert metric.statistic is not None  # the main metrics are counted per case
    first, second = by_name[eligible[0].model], by_name[eligible[1].model]
    cases_a, cases_b = metric.per_case(first.score.per_reply), metric.per_case(second.score.per_reply)
    shared = sorted(set(cases_a) & set(cases_b))
    if not shared:
        return None
    diff = paired_bootstrap(
        [cases_b[c] for c in shared], [cases_a[c] for c in shared], metric.statistic, seed=seed
    ).difference
    if not diff.low <= 0 <= diff.high:
        return None
    return CloseCall(metric.name, first.display_name, second.display_name, diff, len(shared))


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
        return SelectionRecord.model_validate(
            {
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
        )

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
            name, tuple(entries), close_call(name, entries, by_name, seed), tuple(f.label for f in failed)
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


def write_selection(selection: Selection, path: str | Path) -> Path:
    """Write ``selection.json`` (``path`` is the file, or a directory to put it in)."""
    target = Path(path)
    if target.suffix != ".json":
        target = target / "selection.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(selection.to_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror} - pass --out DIR") from None
    return target


# ---------------------------------------------------------------- selection.json, typed


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalSetRef(_Record):
    """The eval set a selection was scored on: `train` loads it from ``path`` (else by ``name``) and
    refuses it when its content no longer has ``hash``."""

    name: str = Field(min_length=1)
    hash: str = Field(min_length=1)
    path: str | None = None


class Winners(_Record):
    train: str | None = None
    deploy_now: str | None = None


class TrainBase(_Record):
    """What `benchsel train` needs to resolve the base's weights."""

    name: str = Field(min_length=1)
    backend: str
    digest: str
    family: str | None = None
    parameter_size: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    size_bytes: int | None = None
    has_projector: bool = False


class VramRecord(_Record):
    bytes_needed: int
    label: str
    estimated_bytes: int | None = None
    measured_bytes: int | None = None
    headroom_bytes: int | None = None


class TrainingRecord(_Record):
    method: str
    needed_bytes: int
    fits: bool
    headroom_bytes: int


class EntryRecord(_Record):
    model: str
    label: str
    rank: int | None
    score: float
    excluded: bool
    exclusions: list[str]
    reason: str
    flags: list[str]
    metrics: dict[str, float]
    vram: VramRecord | None = None
    training: TrainingRecord | None = None
    decode_tokens_per_s: float | None = None
    thinking_share: float = 0.0
    found_gold: bool = True


class EstimateRecord(_Record):
    value: float
    low: float
    high: float


class CloseCallRecord(_Record):
    metric: str
    first: str
    second: str
    difference: EstimateRecord
    cases: int
    text: str


class RankingRecord(_Record):
    winner: str | None
    no_winner: str | None = None
    main_metric: str
    close_call: CloseCallRecord | None = None
    entries: list[EntryRecord]


class FailedRecord(_Record):
    model: str
    label: str
    failure: str


class SelectionRecord(_Record):
    """selection.json: what `benchsel select` decided, read back by `benchsel train`. Older layouts
    are migrated on read (:func:`migrate_selection`); a file that does not fit is refused whole."""

    version: Literal[2]
    created_at: str
    run_id: str = Field(min_length=1)
    evalset: EvalSetRef
    winners: Winners
    train_base: TrainBase | None
    constraints: Constraints
    weights: Weights
    rankings: dict[RankingName, RankingRecord]
    failed: list[FailedRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _winner_has_a_base(self) -> SelectionRecord:
        if self.winners.train is not None and self.train_base is None:
            raise ValueError("winners.train is set but train_base is missing")
        return self


def migrate_selection(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older selection.json layout up to :data:`SELECTION_VERSION`.

    Version 1 (no eval-set path; close calls judged by overlapping marginal intervals, with both
    estimates stored): the path is unknown, each entry's label is its model name, and the marginal
    estimates are dropped."""
    if data.get("version") == 1:
        data = {**data, "version": 2}
        rankings = data.get("rankings")
        if isinstance(rankings, dict):
            data["rankings"] = {key: _migrate_ranking_v1(value) for key, value in rankings.items()}
    return data


def _migrate_ranking_v1(ranking: Any) -> Any:
    if not isinstance(ranking, dict):
        return ranking
    out = dict(ranking)
    entries = out.get("entries")
    if isinstance(entries, list):
        out["entries"] = [
            {"label": e.get("model"), **e} if isinstance(e, dict) and "label" not in e else e for e in entries
        ]
    close = out.get("close_call")
    if isinstance(close, dict):
        out["close_call"] = {k: v for k, v in close.items() if k not in ("first_estimate", "second_estimate")}
    return out


def load_selection(path: str | Path) -> SelectionRecord:
    """Read and validate a ``selection.json`` (migrating an older layout), and check that it names a
    training winner. Any problem is one UsageError naming the file and the field."""
    path = Path(path)
    redo = "write it again with `benchsel select RUN_ID`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be read ({exc.strerror}) - run `benchsel select RUN_ID` first"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}) - {redo}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a selection.json (a JSON object is expected) - {redo}")
    version = data.get("version")
    if version not in (1, SELECTION_VERSION):
        raise UsageError(
            f"{path}: version {version!r} is not a selection.json layout this benchsel reads "
            f"(1 or {SELECTION_VERSION}) - {redo}"
        )
    try:
        record = SelectionRecord.model_validate(migrate_selection(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the file"
        message = str(err["msg"]).removeprefix("Value error, ")
        got = f" (got {_short_repr(err['input'])})" if err["loc"] else ""
        raise UsageError(f"{path}: {where}: {message}{got} - {redo}") from None
    if not record.winners.train:
        why = (
            record.rankings["trainable_potential"].no_winner
            if "trainable_potential" in record.rankings
            else None
        )
        raise UsageError(
            f"{path}: {why or 'no model met the constraints'}, so there is nothing to train - pass --base"
        )
    return record


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def evalset_for_training(record: SelectionRecord) -> EvalSet:
    """The eval set the selection was made on: from its stored path (else its name), refused when its
    content changed since. Each error says to pass --evalset."""
    from benchsel.errors import EvalSetError
    from benchsel.evalset import load_evalset

    ref = record.evalset
    where = ref.path if ref.path and Path(ref.path).is_dir() else ref.name
    try:
        loaded = load_evalset(where)
    except EvalSetError as exc:
        stored = f" at {ref.path}" if ref.path else ""
        raise UsageError(
            f"the selection's eval set '{ref.name}'{stored} cannot be loaded ({exc}) - pass --evalset DIR "
            "with the eval set the run was made on"
        ) from None
    if loaded.content_hash != ref.hash:
        raise UsageError(
            f"the eval set at {loaded.path} changed since the selection was made (content hash "
            f"{loaded.content_hash[:12]}, the selection has {ref.hash[:12]}) - pass --evalset DIR to use "
            "it anyway, or restore the version the run was made on"
        )
    return loaded


# ---------------------------------------------------------------- candidates a backend can serve


@dataclass(frozen=True)
class Candidate:
    """A model a backend can serve, with its estimated VRAM at the planned context."""

    name: str
    snapshot: ModelSnapshot | None
    estimate: hardware.VramEstimate | None
    problem: str | None = None


def describe_candidates(
    backend: Backend, names: Sequence[str], constraints: Constraints | None = None
) -> list[Candidate]:
    """Describe each model and estimate its VRAM; a model that cannot be described is kept with why."""
    c = constraints or Constraints()
    out = []
    for name in names:
        try:
            snapshot = backend.describe(name)
        except BenchselError as exc:
            out.append(Candidate(name, None, None, str(exc)))
            continue
        estimate, problem = _estimate(snapshot, c)
        out.append(Candidate(name, snapshot, estimate, problem))
    return out
