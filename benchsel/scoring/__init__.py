"""Scoring: parsing replies, schema checks, matching, metrics and confidence intervals."""

from __future__ import annotations

from pathlib import Path

from benchsel.evalset import EvalSet, load_evalset
from benchsel.scoring.metrics import Estimate, PairedDifference, paired_bootstrap, wilson
from benchsel.scoring.parse import ParsedReply, parse_reply
from benchsel.scoring.predictions import load_predictions
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
    "load_predictions",
    "paired_bootstrap",
    "parse_reply",
    "score",
    "score_predictions",
    "speed_stats",
    "wilson",
]


def score_predictions(
    evalset: str | Path | EvalSet, predictions: str | Path, *, strict: bool = False, seed: int = 0
) -> ModelScore:
    """Score a predictions JSONL file made by any system against an eval set."""
    loaded = evalset if isinstance(evalset, EvalSet) else load_evalset(evalset)
    replies = load_predictions(predictions, known_ids=set(loaded.by_id))
    return score(loaded, replies, strict=strict, seed=seed)
