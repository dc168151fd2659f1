"""Precision/recall/F1 and their confidence intervals: Wilson for rates, a seeded percentile bootstrap
over cases for micro F1, and a paired bootstrap for the difference between two systems."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchsel.scoring.match import Counts

if TYPE_CHECKING:
    import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point value with the bounds of its confidence interval."""

    value: float
    low: float
    high: float

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high

    def __str__(self) -> str:
        return format(self)

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def precision(c: Counts) -> float:
    """TP / (TP + FP); with no predictions, 1.0 when there was also nothing to find, else 0.0."""
    if c.tp + c.fp:
        return c.tp / (c.tp + c.fp)
    return 0.0 if c.fn else 1.0


def recall(c: Counts) -> float:
    """TP / (TP + FN); with nothing to find, 1.0 when nothing was predicted either, else 0.0."""
    if c.tp + c.fn:
        return c.tp / (c.tp + c.fn)
    return 0.0 if c.fp else 1.0


def f1(c: Counts) -> float:
    """F1 = 2TP / (2TP + FP + FN). With nothing to find and nothing predicted, a perfect 1.0 (as are
    precision and recall, so F1 stays their harmonic mean)."""
    denominator = 2 * c.tp + c.fp + c.fn
    return 2 * c.tp / denominator if denominator else 1.0


def macro_f1(by_label: dict[str, Counts]) -> float:
    """Mean per-label F1 over labels that occur in gold or predictions; 1.0 when there are none (no
    relationship to find and none predicted), as micro F1 is."""
    labels = [c for c in by_label.values() if c.tp + c.fp + c.fn]
    return sum(f1(c) for c in labels) / len(labels) if labels else 1.0


def wilson(successes: int, total: int, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Wilson score interval for a rate; (0, 0, 1) when there is nothing to count."""
    if total <= 0:
        return Estimate(0.0, 0.0, 1.0)
    z = _z(confidence)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


# ---- bootstrap -----------------------------------------------------------------------------------

Statistic = Callable[["np.ndarray"], "np.ndarray"]
"""Maps summed count columns (shape (..., 3): tp, fp, fn) to one value per row."""


def f1_of(sums: np.ndarray) -> np.ndarray:
    import numpy as np

    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def precision_of(sums: np.ndarray) -> np.ndarray:
    import numpy as np

    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    return np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.where(fn > 0, 0.0, 1.0))


def recall_of(sums: np.ndarray) -> np.ndarray:
    import numpy as np

    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    return np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.where(fp > 0, 0.0, 1.0))


STATISTICS: dict[str, Statistic] = {"precision": precision_of, "recall": recall_of, "f1": f1_of}


def _resampled_sums(tables: Sequence[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """Column sums of each (n, 3) table over the same bootstrap draws of its rows: (resamples, 3)."""
    import numpy as np

    n = len(tables[0])
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in tables]
    rows_per_chunk = max(1, 2_000_000 // max(n, 1))
    for first in range(0, resamples, rows_per_chunk):
        rows = min(rows_per_chunk, resamples - first)
        draws = rng.integers(0, n, size=(rows, n)) + np.arange(rows)[:, None] * n
        weights = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        for table, sums in zip(tables, out, strict=True):
            sums.append(weights @ table)
    return [np.concatenate(parts) for parts in out]


def _table(per_case: Sequence[Counts]) -> np.ndarray:
    import numpy as np

    return np.array([(c.tp, c.fp, c.fn) for c in per_case], dtype=np.float64).reshape(-1, 3)


def bootstrap(
    per_case: Sequence[Counts],
    statistic: Statistic = f1_of,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Estimate:
    """Percentile bootstrap over cases of a micro statistic (counts summed over the drawn cases)."""
    counts = _table(per_case)
    point = float(statistic(counts.sum(axis=0)))
    if len(counts) < 2:
        return Estimate(point, point, point)
    values = statistic(_resampled_sums([counts], resamples, seed)[0])
    return Estimate(point, *_percentiles(values, confidence))


def bootstrap_many(
    per_case: Sequence[Counts],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Estimate]:
    """Precision, recall and F1 from one set of resamples (same draws for all three)."""
    counts = _table(per_case)
    total = counts.sum(axis=0)
    sums = _resampled_sums([counts], resamples, seed)[0] if len(counts) >= 2 else None
    out = {}
    for name, statistic in STATISTICS.items():
        point = float(statistic(total))
        if sums is None:
            out[name] = Estimate(point, point, point)
        else:
            out[name] = Estimate(point, *_percentiles(statistic(sums), confidence))
    return out


@dataclass(frozen=True)
class PairedDifference:
    """B minus A on the same cases, with the bootstrap interval and the share of resamples in which
    B was not better (a one-sided p-value for "B improves on A")."""

    difference: Estimate
    p_not_better: float
    cases: int


def paired_bootstrap(
    per_case_a: Sequence[Counts],
    per_case_b: Sequence[Counts],
    statistic: Statistic = f1_of,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """Resample the same cases for both systems; ``per_case_a[i]`` and ``per_case_b[i]`` must be the
    same case."""
    if len(per_case_a) != len(per_case_b):
        raise ValueError("paired bootstrap needs the same cases on both sides")
    return paired_bootstrap_table(
        _table(per_case_a),
        _table(per_case_b),
        statistic,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
    )


def paired_bootstrap_table(
    a: np.ndarray,
    b: np.ndarray,
    statistic: Statistic,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """The paired bootstrap itself: row i of ``a`` and of ``b`` are the same case (any columns, summed
    over the drawn cases, then ``statistic``); B minus A with its interval."""
    point = float(statistic(b.sum(axis=0)) - statistic(a.sum(axis=0)))
    if len(a) < 2:
        return PairedDifference(Estimate(point, point, point), 0.0 if point > 0 else 1.0, len(a))
    sums_a, sums_b = _resampled_sums([a, b], resamples, seed)
    diffs = statistic(sums_b) - statistic(sums_a)
    return PairedDifference(
        Estimate(point, *_percentiles(diffs, confidence)), float((diffs <= 0).mean()), len(a)
    )


def tokens_per_s_of(sums: np.ndarray) -> np.ndarray:
    """Summed (tokens, nanoseconds) columns -> tokens per second."""
    import numpy as np

    return np.asarray(sums[..., 0] / np.maximum(sums[..., 1], 1.0) * 1e9)


def paired_ratio_bootstrap(
    a: Sequence[tuple[int, int]],
    b: Sequence[tuple[int, int]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """B minus A of an aggregate rate (sum of tokens / sum of nanoseconds, per second), resampling cases
    for both."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("paired bootstrap needs the same cases on both sides")
    ta, tb = np.array(a, dtype=np.float64).reshape(-1, 2), np.array(b, dtype=np.float64).reshape(-1, 2)
    return paired_bootstrap_table(
        ta, tb, tokens_per_s_of, resamples=resamples, seed=seed, confidence=confidence
    )


def paired_bootstrap_rate(
    a: Sequence[bool],
    b: Sequence[bool],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """Paired bootstrap for the difference of two rates (for example valid JSON) on the same cases."""
    # A rate is the recall of counts where each case is one item, found (tp) or not (fn).
    per_case_a = [Counts(int(x), 0, 1 - int(x)) for x in a]
    per_case_b = [Counts(int(x), 0, 1 - int(x)) for x in b]
    return paired_bootstrap(
        per_case_a, per_case_b, recall_of, resamples=resamples, seed=seed, confidence=confidence
    )


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
