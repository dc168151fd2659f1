"""benchsel.scoring.metrics: P/R/F1 conventions, macro F1, Wilson, bootstrap and paired bootstrap."""

from __future__ import annotations

import pytest

from benchsel.scoring.match import Counts, extract, match_relationships
from benchsel.scoring.metrics import (
    Estimate,
    bootstrap,
    bootstrap_many,
    f1,
    f1_of,
    macro_f1,
    paired_bootstrap,
    paired_bootstrap_rate,
    precision,
    precision_of,
    recall,
    recall_of,
    wilson,
)


def test_precision_recall_f1_by_hand() -> None:
    c = Counts(tp=3, fp=1, fn=2)
    assert precision(c) == pytest.approx(0.75)
    assert recall(c) == pytest.approx(0.6)
    assert f1(c) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert f1(c) == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (Counts(0, 0, 4), (0.0, 0.0, 0.0)),  # predicted nothing, gold had items
        (Counts(0, 3, 0), (0.0, 0.0, 0.0)),  # no gold items, predicted some
        (Counts(0, 0, 0), (1.0, 1.0, 1.0)),  # both empty: nothing to find and nothing invented
        (Counts(2, 0, 0), (1.0, 1.0, 1.0)),
    ],
    ids=["no-predictions", "no-gold", "both-empty", "perfect"],
)
def test_edge_cases(counts: Counts, expected: tuple[float, float, float]) -> None:
    assert (precision(counts), recall(counts), f1(counts)) == expected


def test_vectorised_statistics_agree_with_the_scalar_ones() -> None:
    import numpy as np

    cases = [Counts(3, 1, 2), Counts(0, 0, 4), Counts(0, 3, 0), Counts(0, 0, 0), Counts(5, 0, 0)]
    table = np.array([(c.tp, c.fp, c.fn) for c in cases], dtype=float)
    assert precision_of(table).tolist() == pytest.approx([precision(c) for c in cases])
    assert recall_of(table).tolist() == pytest.approx([recall(c) for c in cases])
    assert f1_of(table).tolist() == pytest.approx([f1(c) for c in cases])


def test_micro_over_three_cases_by_hand() -> None:
    # case 1: 2 right, 1 invented; case 2: 1 right, 2 missed; case 3: nothing right, 1 invented, 1 missed
    per_case = [Counts(2, 1, 0), Counts(1, 0, 2), Counts(0, 1, 1)]
    total = sum(per_case, Counts())
    assert total == Counts(3, 2, 3)
    assert round(precision(total), 4) == 0.6
    assert round(recall(total), 4) == 0.5
    assert round(f1(total), 4) == 0.5455  # 6 / 11
    estimates = bootstrap_many(per_case, resamples=200, seed=1)
    assert round(estimates["precision"].value, 4) == 0.6
    assert round(estimates["recall"].value, 4) == 0.5
    assert round(estimates["f1"].value, 4) == 0.5455


def test_macro_f1_by_hand() -> None:
    by_label = {
        "USES": Counts(2, 0, 0),  # F1 1.0
        "RUNS_ON": Counts(1, 1, 1),  # F1 0.5
        "OWNS": Counts(0, 1, 0),  # predicted only: F1 0.0
        "MANAGES": Counts(0, 0, 1),  # gold only: F1 0.0
        "UNUSED": Counts(0, 0, 0),  # occurs nowhere: not averaged
    }
    assert round(macro_f1(by_label), 4) == 0.375
    assert macro_f1({}) == 1.0
    assert macro_f1({"X": Counts()}) == 1.0


def test_macro_f1_from_matching() -> None:
    gold = extract(
        {
            "relationships": [
                {"source": "a", "relation": "USES", "target": "b"},
                {"source": "a", "relation": "USES", "target": "c"},
                {"source": "b", "relation": "RUNS_ON", "target": "c"},
            ]
        }
    )
    pred = extract(
        {
            "relationships": [
                {"source": "a", "relation": "uses", "target": "b"},
                {"source": "c", "relation": "runsOn", "target": "b"},
            ]
        }
    )
    result = match_relationships(gold, pred)
    # USES: tp 1, fn 1 -> 2/3; RUNS_ON: fp 1, fn 1 -> 0
    assert round(macro_f1(dict(result.by_label)), 4) == 0.3333
    assert round(f1(result.counts), 4) == 0.4  # micro: 2*1 / (2 + 1 + 2)


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [(15, 20, 0.5313, 0.8881), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (1, 2, 0.0945, 0.9055)],
)
def test_wilson_against_known_values(successes: int, total: int, low: float, high: float) -> None:
    estimate = wilson(successes, total)
    assert estimate.value == successes / total
    assert estimate.low == pytest.approx(low, abs=1e-4)
    assert estimate.high == pytest.approx(high, abs=1e-4)


def test_wilson_of_nothing_and_other_confidences() -> None:
    assert wilson(0, 0) == Estimate(0.0, 0.0, 1.0)
    wide = wilson(15, 20, confidence=0.99)
    narrow = wilson(15, 20, confidence=0.80)
    assert wide.low < narrow.low < 0.75 < narrow.high < wide.high


def _cases(n: int) -> list[Counts]:
    """A deterministic mix of good and bad cases (F1 about 0.7)."""
    pattern = [Counts(3, 0, 0), Counts(2, 1, 1), Counts(1, 1, 2), Counts(3, 1, 0), Counts(0, 2, 2)]
    return [pattern[i % len(pattern)] for i in range(n)]


def test_bootstrap_is_seeded_and_contains_the_point() -> None:
    cases = _cases(20)
    first = bootstrap(cases, seed=7)
    assert bootstrap(cases, seed=7) == first
    assert bootstrap(cases, seed=8) != first
    assert first.value == pytest.approx(f1(sum(cases, Counts())))
    assert first.low < first.value < first.high


def test_bootstrap_narrows_with_more_cases() -> None:
    small = bootstrap(_cases(10), seed=3)
    large = bootstrap(_cases(200), seed=3)
    assert (large.high - large.low) < (small.high - small.low) / 2
    assert large.low < large.value < large.high


def test_bootstrap_of_one_or_no_case_is_the_point() -> None:
    assert bootstrap([Counts(1, 1, 0)]) == Estimate(2 / 3, 2 / 3, 2 / 3)
    assert bootstrap([]) == Estimate(1.0, 1.0, 1.0)
    assert bootstrap_many([])["recall"] == Estimate(1.0, 1.0, 1.0)


def test_bootstrap_many_uses_the_same_draws_as_bootstrap() -> None:
    cases = _cases(30)
    many = bootstrap_many(cases, seed=5)
    assert many["f1"] == bootstrap(cases, f1_of, seed=5)
    assert many["precision"] == bootstrap(cases, precision_of, seed=5)
    assert many["recall"] == bootstrap(cases, recall_of, seed=5)


def test_paired_bootstrap_of_identical_systems_is_zero() -> None:
    cases = _cases(40)
    diff = paired_bootstrap(cases, cases, seed=2)
    assert diff.difference == Estimate(0.0, 0.0, 0.0)
    assert diff.p_not_better == 1.0
    assert diff.cases == 40


def test_paired_bootstrap_of_a_strictly_better_system_is_above_zero() -> None:
    a = _cases(40)
    b = [Counts(c.tp + c.fn, c.fp, 0) for c in a]  # finds everything a missed, invents the same
    diff = paired_bootstrap(a, b, seed=2)
    assert diff.difference.value == pytest.approx(f1(sum(b, Counts())) - f1(sum(a, Counts())))
    assert 0 < diff.difference.low <= diff.difference.value <= diff.difference.high
    assert diff.p_not_better == 0.0
    reverse = paired_bootstrap(b, a, seed=2)
    assert reverse.difference.high < 0
    assert reverse.p_not_better == 1.0


def test_paired_bootstrap_needs_the_same_cases() -> None:
    with pytest.raises(ValueError, match="same cases"):
        paired_bootstrap(_cases(3), _cases(4))


def test_paired_bootstrap_rate() -> None:
    a = [True, False] * 20
    b = [True] * 40
    diff = paired_bootstrap_rate(a, b, seed=1)
    assert diff.difference.value == pytest.approx(0.5)
    assert diff.difference.low > 0
    assert paired_bootstrap_rate(a, a).difference == Estimate(0.0, 0.0, 0.0)


def test_estimate_format_and_overlap() -> None:
    e = Estimate(0.8123, 0.7, 0.9)
    assert f"{e}" == "0.81 [0.70, 0.90]"
    assert f"{e:.3f}" == "0.812 [0.700, 0.900]"
    assert e.overlaps(Estimate(0.95, 0.88, 0.99))
    assert not e.overlaps(Estimate(0.95, 0.91, 0.99))
