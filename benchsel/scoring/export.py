"""Scores as plain JSON-ready dicts: all metrics and the per-case rows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from benchsel.scoring.metrics import Estimate
from benchsel.scoring.scorecard import ModelScore, ReplyScore, ViewScore


def _estimate(e: Estimate) -> dict[str, float]:
    return {"value": e.value, "low": e.low, "high": e.high}


def _view(view: ViewScore) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("entities", "relationships"):
        prf = getattr(view, part)
        out[part] = {
            "precision": _estimate(prf.precision),
            "recall": _estimate(prf.recall),
            "f1": _estimate(prf.f1),
            **asdict(prf.counts),
        }
    out["relationship_macro_f1"] = view.relationship_macro_f1
    return out


def reply_row(reply: ReplyScore) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": reply.case_id,
        "repeat": reply.repeat,
        "difficulty": reply.difficulty,
        "strict_json": reply.strict_json,
        "schema_valid": reply.schema_valid,
        "recovered": reply.recovered,
        "recovery": reply.recovery,
        "schema_error": reply.schema_error,
    }
    for view in ("as_is", "content"):
        match = getattr(reply, view)
        for part in ("entities", "relationships"):
            result = getattr(match, part)
            row[f"{view}_{part}"] = {
                **asdict(result.counts),
                "matched": list(result.matched),
                "missed": list(result.missed),
                "invented": list(result.invented),
            }
    return row


def score_to_dict(score: ModelScore) -> dict[str, Any]:
    return {
        "replies": score.replies,
        "errors": score.errors,
        "valid_json": _estimate(score.valid_json),
        "schema_valid": _estimate(score.schema_valid),
        "recovered": _estimate(score.recovered),
        "as_is": _view(score.as_is),
        "content": _view(score.content),
        "format_debt": {"entity_f1": score.format_debt, "relationship_f1": score.relationship_format_debt},
        "by_difficulty": {k: asdict(v) for k, v in score.by_difficulty.items()},
        "cases": [reply_row(r) for r in score.per_reply],
    }
