"""Scores as plain JSON-ready dicts: all metrics and the per-case rows."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchsel.gcpause import gc_paused
from benchsel.scoring.match import MatchResult
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


def _match_row(result: MatchResult) -> dict[str, Any]:
    # built by hand: dataclasses.asdict deep-copies recursively and was most of a 10,000-case export
    counts = result.counts
    return {
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "matched": list(result.matched),
        "missed": list(result.missed),
        "invented": list(result.invented),
    }


def reply_row(reply: ReplyScore) -> dict[str, Any]:
    as_is, content = reply.as_is, reply.content
    return {
        "id": reply.case_id,
        "repeat": reply.repeat,
        "difficulty": reply.difficulty,
        "strict_json": reply.strict_json,
        "schema_valid": reply.schema_valid,
        "recovered": reply.recovered,
        "recovery": reply.recovery,
        "schema_error": reply.schema_error,
        "as_is_entities": _match_row(as_is.entities),
        "as_is_relationships": _match_row(as_is.relationships),
        "content_entities": _match_row(content.entities),
        "content_relationships": _match_row(content.relationships),
    }


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


def metrics_json(score: ModelScore) -> str:
    """``score_to_dict`` as indented JSON with one line per case row. The indenting encoder is pure
    Python and took longer than scoring itself on 10,000 cases; each row goes through the C encoder."""
    with gc_paused():
        data = score_to_dict(score)
        rows = data.pop("cases")
        head = json.dumps(data, indent=2)
        if not rows:
            return head[:-2] + ',\n  "cases": []\n}\n'
        encode = json.JSONEncoder().encode
        body = ",\n    ".join([encode(row) for row in rows])
    return head[:-2] + ',\n  "cases": [\n    ' + body + "\n  ]\n}\n"


def write_metrics(score: ModelScore, path: Path) -> None:
    """Write every metric and per-case row of ``score`` to ``path`` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(metrics_json(score), encoding="utf-8")
