"""Two runs on the same eval set, model against model: paired bootstrap differences, per-case wins and
losses, and the regression check `benchsel compare --fail-if-regress` applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchsel.errors import BenchselError, UsageError
from benchsel.scoring.match import Counts
from benchsel.scoring.metrics import (
    Estimate,
    f1,
    paired_bootstrap,
    paired_ratio_bootstrap,
)
from benchsel.scoring.registry import Metric, get_metric
from benchsel.scoring.speed import MIN_DURATION_NS
from benchsel.store import RunRecord
from benchsel.summary import ModelSummary, RunSummary

if TYPE_CHECKING:
    import numpy as np


COMPARED = (
    "valid_json",
    "schema_valid",
    "as_is_entity_f1",
    "as_is_entity_recall",
    "content_entity_f1",
    "content_entity_recall",
    "as_is_relationship_f1",
    "content_relationship_f1",
    "decode_tokens_per_s",
)
METRICS: tuple[Metric, ...] = tuple(get_metric(name) for name in COMPARED)
METRIC_NAMES = COMPARED
CHANGE_METRIC = get_metric("content_entity_f1")
"""The per-case figure the wins/losses and the biggest changes are told in."""


class RegressionError(BenchselError):
    """A metric dropped by more than the tolerance `--fail-if-regress` allows (exit 1)."""


@dataclass(frozen=True)
class MetricDiff:
    metric: Metric
    a: float | None
    b: float | None
    difference: Estimate | None
    """B minus A with its paired bootstrap interval; None when a side has no value."""
    p_not_better: float | None


@dataclass(frozen=True)
class CaseChange:
    case_id: str
    difficulty: str
    a: float
    b: float

    @property
    def change(self) -> float:
        return self.b - self.a


@dataclass(frozen=True)
class ModelComparison:
    model_a: str
    model_b: str
    cases: int
    diffs: tuple[MetricDiff, ...]
    changes: tuple[CaseChange, ...]
    """Per shared case, content entity F1 on each side (eval-set order)."""

    @property
    def label(self) -> str:
        return self.model_a if self.model_a == self.model_b else f"{self.model_a} -> {self.model_b}"

    @property
    def wins(self) -> int:
        return sum(1 for c in self.changes if c.change > 1e-9)

    @property
    def losses(self) -> int:
        return sum(1 for c in self.changes if c.change < -1e-9)

    @property
    def ties(self) -> int:
        return len(self.changes) - self.wins - self.losses

    def diff(self, metric: str) -> MetricDiff:
        return next(d for d in self.diffs if d.metric.name == metric)


@dataclass(frozen=True)
class Comparison:
    run_a: RunRecord
    run_b: RunRecord
    evalset_name: str
    evalset_hash: str
    pairs: tuple[ModelComparison, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    labels: tuple[str, str] = ("run A", "run B")
    """What A and B are called in the rendered comparison, e.g. ("base", "fine-tune")."""

    def regressions(self, metric: str, tolerance: float = 0.0) -> list[str]:
        """One line per pair whose ``metric`` dropped (B below A) by more than ``tolerance``."""
        check_metric(metric)
        out = []
        for pair in self.pairs:
            d = pair.diff(metric)
            if d.a is None or d.b is None:
                continue
            drop = d.a - d.b
            if drop > tolerance + 1e-12:
                out.append(
                    f"{metric} dropped by {drop:.3f} for {pair.label} "
                    f"({d.a:.3f} -> {d.b:.3f}), more than the tolerance {tolerance:g}"
                )
        return out


def check_metric(metric: str) -> Metric:
    if metric in COMPARED:
        return get_metric(metric)
    raise UsageError(f"unknown metric '{metric}' - valid metrics: {', '.join(METRIC_NAMES)}")


def parse_regress(spec: str) -> tuple[str, float]:
    """'content_entity_f1:0.02' -> ('content_entity_f1', 0.02); no tolerance means 0."""
    name, _, raw = spec.partition(":")
    check_metric(name.strip())
    try:
        tolerance = float(raw) if raw.strip() else 0.0
    except ValueError:
        raise UsageError(
            f"cannot read the tolerance in {spec!r} - write METRIC[:TOLERANCE], e.g. content_entity_f1:0.02"
        ) from None
    if tolerance < 0:
        raise UsageError(f"the tolerance in {spec!r} must not be negative")
    return name.strip(), tolerance


# ---- per-case tables ----------------------------------------------------------------------------


def _timings(model: ModelSummary) -> dict[str, tuple[int, int]]:
    """Per case: (decode tokens, decode nanoseconds) summed over repeats, from honest timings only."""
    out: dict[str, tuple[int, int]] = {}
    for result in model.results:
        reply = result.reply
        if (
            not result.ok
            or reply is None
            or reply.eval_count <= 0
            or reply.eval_duration_ns < MIN_DURATION_NS
        ):
            continue
        tokens, ns = out.get(result.case_id, (0, 0))
        out[result.case_id] = (tokens + reply.eval_count, ns + reply.eval_duration_ns)
    return out


# ---- comparing ----------------------------------------------------------------------------------


def _speed_diff(metric: Metric, a: ModelSummary, b: ModelSummary, seed: int) -> MetricDiff:
    ta, tb = _timings(a), _timings(b)
    shared = [c for c in ta if c in tb]
    va, vb = a.speed.decode_tokens_per_s, b.speed.decode_tokens_per_s
    if not shared or va is None or vb is None:
        return MetricDiff(metric, va, vb, None, None)
    paired = paired_ratio_bootstrap([ta[c] for c in shared], [tb[c] for c in shared], seed=seed)
    return MetricDiff(metric, va, vb, paired.difference, paired.p_not_better)


def compare_models(
    a: ModelSummary, b: ModelSummary, case_order: Sequence[str], *, seed: int = 0
) -> ModelComparison:
    replies_a, replies_b = a.score.per_reply, b.score.per_reply
    in_a, in_b = {r.case_id for r in replies_a}, {r.case_id for r in replies_b}
    shared = [c for c in case_order if c in in_a and c in in_b]
    diffs = []
    for i, metric in enumerate(METRICS):
        if metric.statistic is None:
            diffs.append(_speed_diff(metric, a, b, seed + i))
            continue
        if not shared:
            diffs.append(MetricDiff(metric, None, None, None, None))
            continue
        cases_a, cases_b = metric.per_case(replies_a), metric.per_case(replies_b)
        per_a, per_b = [cases_a[c] for c in shared], [cases_b[c] for c in shared]
        statistic = metric.statistic
        paired = paired_bootstrap(per_a, per_b, statistic, seed=seed + i)
        value_a = float(statistic(_sum(per_a)))
        diffs.append(
            MetricDiff(
                metric, value_a, value_a + paired.difference.value, paired.difference, paired.p_not_better
            )
        )
    entity_a, entity_b = CHANGE_METRIC.per_case(replies_a), CHANGE_METRIC.per_case(replies_b)
    difficulty = {r.case_id: r.difficulty for r in replies_a}
    changes = tuple(CaseChange(c, difficulty[c], f1(entity_a[c]), f1(entity_b[c])) for c in shared)
    return ModelComparison(a.name, b.name, len(shared), tuple(diffs), changes)


def _sum(per_case: Sequence[Counts]) -> np.ndarray:
    import numpy as np

    total = sum(per_case, Counts())
    return np.array([total.tp, total.fp, total.fn], dtype=np.float64)


def pair_models(summary_a: RunSummary, summary_b: RunSummary) -> list[tuple[ModelSummary, ModelSummary]]:
    """Models with the same name; when each run has exactly one model, those two (base vs fine-tuned)."""
    names_b = {m.name: m for m in summary_b.models}
    pairs = [(m, names_b[m.name]) for m in summary_a.models if m.name in names_b]
    if not pairs and len(summary_a.models) == 1 and len(summary_b.models) == 1:
        pairs = [(summary_a.models[0], summary_b.models[0])]
    return pairs


def compare_runs(
    summary_a: RunSummary,
    summary_b: RunSummary,
    *,
    seed: int = 0,
    labels: tuple[str, str] = ("run A", "run B"),
) -> Comparison:
    """Compare run B against run A (B minus A) on the eval set both were made with."""
    run_a, run_b = summary_a.run, summary_b.run
    hash_a, hash_b = run_a.evalset_hash, run_b.evalset_hash
    if hash_a != hash_b:
        raise UsageError(
            f"runs {run_a.id} and {run_b.id} used different eval sets ({run_a.evalset_name} "
            f"{hash_a[:12]} vs {run_b.evalset_name} {hash_b[:12]}): only runs on the same eval set "
            "compare - re-run one of them on the other's eval set"
        )
    pairs = pair_models(summary_a, summary_b)
    if not pairs:
        raise UsageError(
            f"runs {run_a.id} and {run_b.id} have no model in common "
            f"({', '.join(run_a.models)} vs {', '.join(run_b.models)}) - compare runs of the same "
            "models, or runs of one model each (base vs fine-tuned)"
        )
    order = [case.id for case in summary_a.evalset.cases]
    paired_a = {a.name for a, _ in pairs}
    paired_b = {b.name for _, b in pairs}
    return Comparison(
        run_a=run_a,
        run_b=run_b,
        evalset_name=summary_a.evalset.name,
        evalset_hash=hash_a,
        pairs=tuple(compare_models(a, b, order, seed=seed) for a, b in pairs),
        only_a=tuple(m.name for m in summary_a.models if m.name not in paired_a),
        only_b=tuple(m.name for m in summary_b.models if m.name not in paired_b),
        labels=labels,
    )
