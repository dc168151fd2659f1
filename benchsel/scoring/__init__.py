"""Scoring: parsing replies, schema checks, matching, metrics and confidence intervals."""

from __future__ import annotations

from pathlib import Path

from benchsel.evalset import EvalSet, load_evalset
from benchsel.scoring.metrics import Estimate, PairedDifference, paired_bootstrap, wilson
from benchsel.scoring.parse import ParsedReply, parse_reply
from benchsel.scoring.predictions import iter_predictions, load_predictions
from benchsel.scoring.scorecard import ModelScore, ReplyInput, ReplyScore, score
from benchsel.scoring.speed import SpeedStats, speed_stats

__all__ = [
    "Estimate",
    "ModelScore",
    "PairedDifference",
    "ParsedReply",
    "ReplyInput",
    "ReplyScore",
    "SpeedStats",
    "iter_predictions",
    "load_predictions",
    "paired_bootstrap",
    "parse_reply",
    "score",
    "score_predictions",
    "speed_stats",
    "wilson",
]


def score_predictions(
    evalset: str | Path | EvalSet,
    predictions: str | Path,
    *,
    strict: bool = False,
    seed: int = 0,
    keep_replies: bool = True,
) -> ModelScore:
    """Score a predictions JSONL file made by any system against an eval set, reading it line by line.
    With ``keep_replies=False`` only totals and per-case counts are kept: memory stays bounded by
    the number of cases, whatever the file's size."""
    loaded = evalset if isinstance(evalset, EvalSet) else load_evalset(evalset)
    replies = iter_predictions(predictions, known_ids=set(loaded.by_id))
    return score(loaded, replies, strict=strict, seed=seed, keep_replies=keep_replies)
