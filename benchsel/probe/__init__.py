"""Measured trainability: a few-shot probe and a pilot-LoRA probe per candidate, measured on a probe
split of the run's cases, stored with the run, and ranked beside the two predicted rankings."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from benchsel.probe.figures import METHODS, PROBE_METRIC, ProbeFigures, ProbeMethod, TrainingFigures
from benchsel.probe.measure import ProbeOutcome, ProbePlan, probe
from benchsel.probe.ranking import MeasuredEntry, MeasuredRanking, measured_ranking
from benchsel.probe.split import Split, parse_split, split_cases

if TYPE_CHECKING:
    from benchsel.selection import Ranking, Selection
    from benchsel.store import Store

__all__ = [
    "METHODS",
    "PROBE_METRIC",
    "MeasuredEntry",
    "MeasuredRanking",
    "ProbeFigures",
    "ProbeMethod",
    "ProbeOutcome",
    "ProbePlan",
    "Split",
    "TrainingFigures",
    "latest_measured_ranking",
    "measured_ranking",
    "parse_split",
    "probe",
    "split_cases",
    "with_measured",
]


def latest_measured_ranking(
    store: Store, run_id: str, trainable: Ranking | None = None
) -> MeasuredRanking | None:
    """The measured-trainability ranking of the run's latest probe, or None when it has none."""
    stored = store.latest_probe(run_id)
    if stored is None or not stored.models:
        return None
    return measured_ranking(stored, trainable)


def with_measured(selection: Selection, store: Store) -> Selection:
    """The selection with its third ranking, when the run has been probed."""
    ranking = latest_measured_ranking(store, selection.run_id, selection.trainable)
    return dataclasses.replace(selection, measured=ranking) if ranking is not None else selection
