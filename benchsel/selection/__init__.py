"""Choosing the base model: hardware constraints first, then two rankings of a scored run.

*Deploy-now* ranks what each model delivers today (as-is quality); *trainable potential* ranks what a
LoRA can build on (content quality, with the easy-to-train skills discounted). One module per concern:
options (constraints, weights and their files), checks (each model against the constraints), ranking
(the two rankings and the Selection), close_call (the top two told apart or not) and record
(selection.json). docs/selection.md explains every weight and the worked motivating case.
"""

from __future__ import annotations

from benchsel.selection.checks import Candidate, Checks, TrainingFit, check, describe_candidates
from benchsel.selection.close_call import CloseCall
from benchsel.selection.options import (
    DEFAULT_WEIGHTS,
    MAIN_METRIC,
    SCORE_METRICS,
    Constraints,
    RankingName,
    Weights,
    load_weights,
    parse_weight_overrides,
)
from benchsel.selection.ranking import Entry, FailedModel, Ranking, Selection, metric_values, select
from benchsel.selection.record import (
    SELECTION_VERSION,
    SelectionRecord,
    evalset_for_training,
    load_selection,
    read_selection,
    write_selection,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "MAIN_METRIC",
    "SCORE_METRICS",
    "SELECTION_VERSION",
    "Candidate",
    "Checks",
    "CloseCall",
    "Constraints",
    "Entry",
    "FailedModel",
    "Ranking",
    "RankingName",
    "Selection",
    "SelectionRecord",
    "TrainingFit",
    "Weights",
    "check",
    "describe_candidates",
    "evalset_for_training",
    "load_selection",
    "load_weights",
    "metric_values",
    "parse_weight_overrides",
    "read_selection",
    "select",
    "write_selection",
]
