"""The figures a report shows, formatted once, so the Markdown and the HTML can never disagree."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchsel.evalset import DIFFICULTIES, Case
from benchsel.prefix_cache import describe_setting
from benchsel.scoring.metrics import Estimate
from benchsel.scoring.registry import get_metric
from benchsel.summary import ModelSummary, RunSummary

NA = "n/a"


@dataclass(frozen=True)
class Cell:
    """What a table cell reads (``text``) and the number the HTML sorts it by (None sorts last)."""

    text: str
    sort: float | str | None = None


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    help: str = ""


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def texts(self) -> list[list[str]]:
        return [[cell.text for cell in row] for row in self.rows]


# ---- number formats -----------------------------------------------------------------------------


def fmt_score(value: float) -> str:
    return f"{value:.2f}"


def fmt_rate(value: float) -> str:
    return f"{value * 100:.0f}%"


def fmt_estimate(estimate: Estimate, as_rate: bool = False) -> str:
    return format(estimate, ".0%" if as_rate else ".2f")


def fmt_signed(value: float) -> str:
    return f"{value:+.2f}"


def fmt_tps(value: float | None) -> str:
    return NA if value is None else f"{value:.1f} tok/s"


def estimate_cell(estimate: Estimate, as_rate: bool = False) -> Cell:
    return Cell(fmt_estimate(estimate, as_rate), estimate.value)


_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMBT])", re.IGNORECASE)
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def params_cell(model: ModelSummary) -> Cell:
    snapshot = model.snapshot
    count = snapshot.parameter_count
    text = snapshot.parameter_size or (_short_count(count) if count else "")
    if count is None and snapshot.parameter_size:
        match = _SIZE.match(snapshot.parameter_size)
        count = int(float(match.group(1)) * _SCALE[match.group(2).upper()]) if match else None
    return Cell(text or NA, count)


def _short_count(count: int) -> str:
    for suffix, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}".rstrip("0").rstrip(".") + suffix
    return str(count)


# ---- the tables -----------------------------------------------------------------------------------

# (column key, registered metric, header, help): the report's table of the motivating case
RESULT_METRICS = (
    ("valid_json", "valid_json", "Valid JSON", "share of replies that are one JSON object as they stand"),
    (
        "entity_f1",
        "as_is_entity_f1",
        "Entity F1",
        "as-is: a reply that is not valid JSON counts as an empty answer",
    ),
    ("entity_recall", "as_is_entity_recall", "Entity Recall", "as-is"),
    ("relationship_f1", "as_is_relationship_f1", "Relationship F1", "as-is"),
    ("speed", "decode_tokens_per_s", "Speed", "decode tokens per second (server timings)"),
    ("schema_valid", "schema_valid", "Schema valid", "valid JSON that also validates against schema.json"),
    ("content_entity_f1", "content_entity_f1", "Content entity F1", "on the JSON recovered from every reply"),
)
RESULT_COLUMNS = (
    Column("model", "Model"),
    Column("params", "Params"),
    *(Column(key, title, help) for key, _, title, help in RESULT_METRICS),
    Column("format_debt", "Format debt", "content minus as-is entity F1: what a LoRA fixes cheaply"),
)


def metric_cell(name: str, model: ModelSummary) -> Cell:
    """A registered metric's cell: the estimate with its interval where the scorecard has one."""
    metric = get_metric(name)
    if metric.estimate is not None:
        return estimate_cell(metric.estimate(model.score), as_rate=metric.kind == "rate")
    value = metric.read(model)
    return Cell(fmt_tps(value) if metric.kind == "tps" else NA if value is None else fmt_score(value), value)


def failed_row(m: ModelSummary, columns: int) -> tuple[Cell, ...]:
    """A model with no scored reply has no figures: its row says it failed, with each error class."""
    why = f"failed: {m.error_counts}" if m.error_kinds else "failed: no reply"
    return (Cell(m.display_name, m.name), Cell(why, None), *(Cell(NA) for _ in range(columns - 2)))


def report_results_table(models: Sequence[ModelSummary]) -> Table:
    rows = []
    for m in models:
        if m.failed:
            rows.append(failed_row(m, len(RESULT_COLUMNS)))
            continue
        rows.append(
            (
                Cell(m.display_name, m.name),
                params_cell(m),
                *(metric_cell(name, m) for _, name, _, _ in RESULT_METRICS),
                Cell(fmt_signed(m.score.format_debt), m.score.format_debt),
            )
        )
    return Table(RESULT_COLUMNS, tuple(rows))


CONTENT_COLUMNS = (
    Column("model", "Model"),
    Column("recovered", "JSON recovered"),
    Column("entity_precision", "Entity P"),
    Column("entity_recall", "Entity R"),
    Column("entity_f1", "Entity F1"),
    Column("relationship_precision", "Relationship P"),
    Column("relationship_recall", "Relationship R"),
    Column("relationship_f1", "Relationship F1"),
    Column("relationship_macro_f1", "Relationship macro F1", "mean F1 over relation labels"),
)


def content_table(models: Sequence[ModelSummary]) -> Table:
    rows = []
    for m in models:
        if m.failed:
            rows.append(failed_row(m, len(CONTENT_COLUMNS)))
            continue
        c = m.score.content
        rows.append(
            (
                Cell(m.display_name, m.name),
                estimate_cell(m.score.recovered, as_rate=True),
                estimate_cell(c.entities.precision),
                estimate_cell(c.entities.recall),
                estimate_cell(c.entities.f1),
                estimate_cell(c.relationships.precision),
                estimate_cell(c.relationships.recall),
                estimate_cell(c.relationships.f1),
                Cell(fmt_score(c.relationship_macro_f1), c.relationship_macro_f1),
            )
        )
    return Table(CONTENT_COLUMNS, tuple(rows))


DIFFICULTY_COLUMNS = (
    Column("model", "Model"),
    Column("difficulty", "Difficulty"),
    Column("replies", "Replies"),
    Column("valid_json", "Valid JSON"),
    Column("entity_f1", "Entity F1 (as-is)"),
    Column("content_entity_f1", "Content entity F1"),
    Column("content_entity_recall", "Content entity recall"),
    Column("content_relationship_f1", "Content relationship F1"),
)


def difficulty_table(models: Sequence[ModelSummary]) -> Table:
    rows = []
    for m in models:
        for difficulty in DIFFICULTIES:
            d = m.score.by_difficulty.get(difficulty)
            if d is None:
                continue
            rows.append(
                (
                    Cell(m.display_name, m.name),
                    Cell(difficulty, DIFFICULTIES.index(difficulty)),
                    Cell(str(d.replies), d.replies),
                    Cell(fmt_rate(d.valid_json), d.valid_json),
                    Cell(fmt_score(d.as_is_entity_f1), d.as_is_entity_f1),
                    Cell(fmt_score(d.content_entity_f1), d.content_entity_f1),
                    Cell(fmt_score(d.content_entity_recall), d.content_entity_recall),
                    Cell(fmt_score(d.content_relationship_f1), d.content_relationship_f1),
                )
            )
    return Table(DIFFICULTY_COLUMNS, tuple(rows))


# ---- notes and metadata ---------------------------------------------------------------------------


def thinking_notes(summary: RunSummary) -> list[str]:
    """One line per model that thought, ran out of tokens or hit transport errors."""
    num_predict = summary.run.options.get("num_predict")
    notes = []
    for m in summary.models:
        sp = m.speed
        parts = []
        if sp.thinking_replies:
            parts.append(
                f"{sp.thinking_replies} of {sp.replies} replies carried thinking; "
                f"{sp.thinking_share * 100:.0f}% of its output came before the JSON"
            )
        if sp.truncated:
            budget = f" (num_predict {num_predict})" if num_predict else ""
            parts.append(f"{sp.truncated} replies were cut off at the token limit{budget}")
        if m.error_kinds:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(m.error_kinds.items()))
            parts.append(f"transport errors not scored: {kinds}")
        if m.failure is not None:
            parts = [m.failure + "; it has no score"]
        if parts:
            notes.append(f"{m.display_name}: " + "; ".join(parts) + ".")
        notes += [f"{note}." for note in (m.host_note(),) if note]  # a multi-host run moved it
    return notes


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def metadata_rows(summary: RunSummary) -> list[tuple[str, str]]:
    run = summary.run
    servers = sorted({m.snapshot.server_version for m in summary.models if m.snapshot.server_version})
    rows = [
        ("Run", run.id),
        ("Date", run.created_at),
        ("Status", run.status),
        ("benchsel version", run.benchsel_version),
        ("Backend", f"{run.backend} at {run.host}" if run.host else run.backend),
        ("Server version", ", ".join(servers) or NA),
        ("Eval set", f"{run.evalset_name} ({cases_line(summary)})"),
        ("Eval set hash", run.evalset_hash),
        ("Repeats", str(run.repeats)),
        ("Options", _json(run.options)),
        ("Prompt cache", describe_setting(run.options, run.backend)),
        ("Hardware", _json(run.hardware) if run.hardware else NA),
    ]
    for m in summary.models:
        snap = m.snapshot
        detail = ", ".join(
            part
            for part in (
                m.host and f"on {m.host}",
                snap.digest and f"digest {snap.digest[:19]}",
                snap.quantization,
                snap.family,
                m.load_s is not None and f"load {m.load_s:.1f} s",
                m.speed.cold_prefill_tokens_per_s
                and f"cold prefill {m.speed.cold_prefill_tokens_per_s:.0f} tok/s",
                m.speed.contention and m.speed.contention.reason,
            )
            if part
        )
        rows.append((f"Model {m.name}", detail or NA))
    return rows


def cases_run(summary: RunSummary) -> list[Case]:
    """The eval set's cases that were sent to at least one model (all of them unless --limit), in order."""
    sent = {result.case_id for m in summary.models for result in m.results}
    return [case for case in summary.evalset.cases if case.id in sent]


def cases_line(summary: RunSummary) -> str:
    """'24 cases' or, after --limit, '3 of 24 cases run'."""
    total, run = len(summary.evalset.cases), len(cases_run(summary))
    return f"{total} cases" if run == total else f"{run} of {total} cases run"


def best(models: Sequence[ModelSummary], key: Callable[[ModelSummary], float | None]) -> ModelSummary | None:
    scored = [(value, m) for m in models if not m.failed and (value := key(m)) is not None]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None
