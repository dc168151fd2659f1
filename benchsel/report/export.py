"""A run as data for pandas and spreadsheets: metrics.json (per model every metric with its 95%
interval, speed and memory, then the per-case rows), models.csv and cases.csv (the same figures, flat).

The CSV files are written with the standard library: one flat row per model and per reply needs no
DataFrame, and `pandas.read_csv("cases.csv")` reads them back as they are.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchsel import __version__
from benchsel.scoring.metrics import Estimate, f1
from benchsel.scoring.scorecard import ModelScore, ReplyScore
from benchsel.summary import ModelSummary, RunSummary

EXPORT_VERSION = 1


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities (a model with no scored reply) become null / an empty cell: JSON has neither."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def _estimate_columns(name: str, estimate: Estimate) -> dict[str, float]:
    return {name: estimate.value, f"{name}_low": estimate.low, f"{name}_high": estimate.high}


def metric_estimates(score: ModelScore) -> dict[str, Estimate]:
    """Every headline metric of a model with its interval, under the names the CSV columns use."""
    metrics = {
        "valid_json": score.valid_json,
        "schema_valid": score.schema_valid,
        "recovered": score.recovered,
    }
    for view_name in ("as_is", "content"):
        view = getattr(score, view_name)
        for part, short in (("entities", "entity"), ("relationships", "relationship")):
            prf = getattr(view, part)
            for stat in ("precision", "recall", "f1"):
                metrics[f"{view_name}_{short}_{stat}"] = getattr(prf, stat)
    return metrics


def model_row(model: ModelSummary) -> dict[str, Any]:
    """One model: identity, counts, metrics (value, low, high), format debt, speed and memory."""
    s = model.snapshot
    row: dict[str, Any] = {
        "model": model.name,
        "backend": model.backend,
        "parameter_size": s.parameter_size,
        "quantization": s.quantization,
        "replies": model.score.replies,
        "errors": model.score.errors,
    }
    for name, estimate in metric_estimates(model.score).items():
        row.update(_estimate_columns(name, estimate))
    row["format_debt_entity_f1"] = model.score.format_debt
    row["format_debt_relationship_f1"] = model.score.relationship_format_debt
    speed = model.speed
    row.update(
        decode_tokens_per_s=speed.decode_tokens_per_s,
        prefill_tokens_per_s=speed.prefill_tokens_per_s,
        latency_p50_s=speed.latency_p50_s,
        latency_p95_s=speed.latency_p95_s,
        pre_json_share=speed.thinking_share,
        truncated=speed.truncated,
        memory_vram_bytes=model.memory.vram_bytes_measured if model.memory else None,
        memory_ram_bytes=model.memory.ram_bytes_measured if model.memory else None,
        memory_source=model.memory.source if model.memory else None,
    )
    return _finite(row)


def _counts(prefix: str, counts: Any) -> dict[str, Any]:
    return {
        f"{prefix}_tp": counts.tp,
        f"{prefix}_fp": counts.fp,
        f"{prefix}_fn": counts.fn,
        f"{prefix}_f1": f1(counts),
    }


def case_rows(model: ModelSummary) -> Iterator[dict[str, Any]]:
    """One row per scored reply of ``model``: validity, counts and F1 per view, tokens and time."""
    stored = {(r.case_id, r.repeat): r for r in model.results}
    reply: ReplyScore
    for reply in model.score.per_reply:
        result = stored.get((reply.case_id, reply.repeat))
        raw = result.reply if result is not None else None
        row: dict[str, Any] = {
            "model": model.name,
            "case_id": reply.case_id,
            "repeat": reply.repeat,
            "difficulty": reply.difficulty,
            "valid_json": reply.strict_json,
            "schema_valid": reply.schema_valid,
            "recovered": reply.recovered,
            "error_kind": result.error_kind if result is not None else None,
        }
        for view_name in ("as_is", "content"):
            view = getattr(reply, view_name)
            row.update(_counts(f"{view_name}_entity", view.entities.counts))
            row.update(_counts(f"{view_name}_relationship", view.relationships.counts))
        row.update(
            output_tokens=raw.eval_count if raw else None,
            wall_s=raw.wall_s if raw else None,
            done_reason=raw.done_reason if raw else None,
        )
        yield _finite(row)


def export_dict(summary: RunSummary) -> dict[str, Any]:
    run = summary.run
    return {
        "export_version": EXPORT_VERSION,
        "benchsel_version": __version__,
        "run": {
            "id": run.id,
            "created_at": run.created_at,
            "status": run.status,
            "backend": run.backend,
            "evalset": {"name": summary.evalset.name, "hash": summary.evalset.content_hash},
            "cases_in_evalset": len(summary.evalset.cases),
            "options": run.options,
        },
        "models": [model_row(m) for m in summary.models],
        "cases": [row for m in summary.models for row in case_rows(m)],
    }


def write_json(summary: RunSummary, target: Path) -> Path:
    path = target / "metrics.json"
    path.write_text(json.dumps(export_dict(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def write_csv(summary: RunSummary, target: Path) -> list[Path]:
    return [
        _write_csv(target / "models.csv", [model_row(m) for m in summary.models]),
        _write_csv(target / "cases.csv", [row for m in summary.models for row in case_rows(m)]),
    ]
