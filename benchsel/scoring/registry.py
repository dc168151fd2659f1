"""The registry of metrics: each one's name, title, how to read it from a scored model, its direction,
its format, and how to count it per case for paired statistics. Selection, reports, comparisons and the
CLI look metrics up here instead of spelling them out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from benchsel.errors import UsageError
from benchsel.scoring.match import Counts, CountsByKey
from benchsel.scoring.metrics import Estimate, Statistic, f1_of, recall_of
from benchsel.scoring.scorecard import ModelScore, ReplyScore
from benchsel.scoring.speed import SpeedStats

Kind = Literal["rate", "score", "tps"]


class Scored(Protocol):
    """What a metric is read from: a model's scorecard and its speed (a summary.ModelSummary)."""

    @property
    def score(self) -> ModelScore: ...

    @property
    def speed(self) -> SpeedStats: ...


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    kind: Kind
    """'rate' (shown as %), 'score' (0-1) or 'tps' (tokens per second)."""
    read: Callable[[Scored], float | None]
    estimate: Callable[[ModelScore], Estimate] | None = None
    """The value with its interval, for metrics the scorecard estimates."""
    reply_counts: Callable[[ReplyScore], Counts] | None = None
    """One reply as counts, so per-case sums feed a (paired) bootstrap with ``statistic``."""
    statistic: Statistic | None = None
    higher_is_better: bool = True

    def format(self, value: float | None, na: str = "n/a") -> str:
        if value is None:
            return na
        if self.kind == "rate":
            return f"{value * 100:.1f}%"
        if self.kind == "tps":
            return f"{value:.1f}"
        return f"{value:.3f}"

    def per_case(self, replies: Iterable[ReplyScore]) -> dict[str, Counts]:
        """Counts per case id, summed over repeats (insertion order of the replies)."""
        if self.reply_counts is None:
            raise ValueError(f"metric {self.name} has no per-case counts")
        cases = CountsByKey()
        for reply in replies:
            cases.add(reply.case_id, self.reply_counts(reply))
        return cases.by_key()


def _hit(flag: bool) -> Counts:
    return Counts(1, 0, 0) if flag else Counts(0, 0, 1)


def _estimated(
    name: str,
    title: str,
    kind: Kind,
    estimate: Callable[[ModelScore], Estimate],
    reply_counts: Callable[[ReplyScore], Counts],
    statistic: Statistic,
) -> Metric:
    return Metric(name, title, kind, lambda m: estimate(m.score).value, estimate, reply_counts, statistic)


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric (built-ins are registered the same way a plugin would)."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name} is already registered")
    METRICS[metric.name] = metric
    return metric


for _metric in (
    _estimated(
        "valid_json",
        "Valid JSON",
        "rate",
        lambda s: s.valid_json,
        lambda r: _hit(r.strict_json),
        recall_of,
    ),
    _estimated(
        "schema_valid",
        "Schema valid",
        "rate",
        lambda s: s.schema_valid,
        lambda r: _hit(r.schema_valid),
        recall_of,
    ),
    _estimated(
        "as_is_entity_f1",
        "Entity F1 (as-is)",
        "score",
        lambda s: s.as_is.entities.f1,
        lambda r: r.as_is.entities.counts,
        f1_of,
    ),
    _estimated(
        "as_is_entity_recall",
        "Entity recall (as-is)",
        "score",
        lambda s: s.as_is.entities.recall,
        lambda r: r.as_is.entities.counts,
        recall_of,
    ),
    _estimated(
        "content_entity_f1",
        "Content entity F1",
        "score",
        lambda s: s.content.entities.f1,
        lambda r: r.content.entities.counts,
        f1_of,
    ),
    _estimated(
        "content_entity_recall",
        "Content entity recall",
        "score",
        lambda s: s.content.entities.recall,
        lambda r: r.content.entities.counts,
        recall_of,
    ),
    _estimated(
        "as_is_relationship_f1",
        "Relationship F1 (as-is)",
        "score",
        lambda s: s.as_is.relationships.f1,
        lambda r: r.as_is.relationships.counts,
        f1_of,
    ),
    _estimated(
        "content_relationship_f1",
        "Content relationship F1",
        "score",
        lambda s: s.content.relationships.f1,
        lambda r: r.content.relationships.counts,
        f1_of,
    ),
    Metric("decode_tokens_per_s", "Decode tok/s", "tps", lambda m: m.speed.decode_tokens_per_s),
    Metric("no_thinking_leak", "No thinking leak", "rate", lambda m: 1.0 - m.speed.thinking_share),
):
    register(_metric)


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; an unknown name is a usage error listing the known ones."""
    metric = METRICS.get(name)
    if metric is None:
        raise UsageError(f"unknown metric '{name}' - use one of {', '.join(METRICS)}")
    return metric
