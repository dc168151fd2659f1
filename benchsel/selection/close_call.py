"""A close call: the top two of a ranking cannot be told apart on its main metric (a paired bootstrap
over the same cases)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchsel.scoring.metrics import Estimate, paired_bootstrap
from benchsel.scoring.registry import get_metric
from benchsel.selection.options import MAIN_METRIC, RankingName
from benchsel.summary import ModelSummary


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


def close_call(name: RankingName, contenders: Sequence[ModelSummary], seed: int = 0) -> CloseCall | None:
    """The top two models that could win (``contenders``, best first), on the main metric, when the
    paired bootstrap interval of their difference includes zero; None when it excludes zero (the order is
    real) or there is no such pair (two models that both found nothing are not a close call: neither can
    win)."""
    if len(contenders) < 2:
        return None
    metric = get_metric(MAIN_METRIC[name])
    assert metric.statistic is not None  # the main metrics are counted per case
    first, second = contenders[0], contenders[1]
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
