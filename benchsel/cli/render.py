"""What the commands share in their output: the console, the results table, formatting helpers."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchsel.defaults import MOSTLY_THINKING
from benchsel.scoring.registry import get_metric

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from benchsel.scoring.metrics import Estimate
    from benchsel.summary import ModelSummary, RunSummary


MIN_WIDTH = 150


def console(stderr: bool = False) -> Console:
    """Rich console; when output is not a terminal (a pipe, a log), wide enough for the tables."""
    from rich.console import Console

    con = Console(stderr=stderr, highlight=False)
    if not con.is_terminal:
        con = Console(stderr=stderr, highlight=False, width=max(con.width, MIN_WIDTH))
    return con


def pct(estimate: Estimate) -> str:
    return f"{estimate.value:.0%}"


def num(estimate: Estimate, ci: bool = True) -> str:
    if not ci:
        return f"{estimate.value:.2f}"
    return f"{estimate.value:.2f} ({estimate.low:.2f}-{estimate.high:.2f})"


def rate(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[ModelSummary], str]

    @property
    def stacked(self) -> str:
        """The header on two lines ("Content" over "F1"), for a narrow table."""
        return self.header.replace(" ", "\n", 1)


def _metric(header: str, name: str, ci: bool = False) -> _Column:
    """A column of a registered metric: a rate as a whole percentage, a score with its interval when
    ``ci``, a speed with one decimal."""
    metric = get_metric(name)
    estimate = metric.estimate
    if estimate is None:
        return _Column(header, lambda m: rate(metric.read(m)))
    if metric.kind == "rate":
        return _Column(header, lambda m: pct(estimate(m.score)))
    return _Column(header, lambda m: num(estimate(m.score), ci))


def _columns(ci: bool) -> tuple[_Column, ...]:
    """The results columns, most important first: a narrow terminal drops them from the end."""
    return (
        _metric("Valid JSON", "valid_json"),
        _metric("Entity F1", "as_is_entity_f1", ci),
        _metric("Rel F1", "as_is_relationship_f1"),
        _metric("Content F1", "content_entity_f1", ci),
        _metric("tok/s", "decode_tokens_per_s"),
        _metric("Recall", "as_is_entity_recall"),
        _metric("Schema", "schema_valid"),
        _Column("p50 s", lambda m: rate(m.speed.latency_p50_s)),
        _Column("Pre-JSON", lambda m: f"{m.speed.thinking_share:.0%}"),
        _Column("Params", lambda m: m.snapshot.parameter_size or "-"),
    )


CORE_COLUMNS = 4
"""Valid JSON, Entity F1, Rel F1 and Content F1: below this many, the intervals go before a column."""


def results_table(summaries: list[ModelSummary], title: str | None = None, width: int | None = None) -> Table:
    """The motivating case's table (DESIGN.md) plus schema-valid, content F1, latency and thinking.

    Within ``width`` columns (default: no limit) the least important columns are left out, and then
    the intervals, rather than any cell cut short: a model name is always shown whole. A model with no
    scored reply is a row that says it failed, with its error classes and counts, and no figures."""
    for ci in (True, False):
        columns = list(_columns(ci))
        while True:
            table = _results_table(summaries, title, columns, ci)
            if width is None or _natural_width(table) <= width:
                return table
            if len(columns) <= (CORE_COLUMNS if ci else 0):
                break
            columns.pop()
    return table


def _results_table(
    summaries: list[ModelSummary], title: str | None, columns: list[_Column], ci: bool
) -> Table:
    from rich.table import Table

    caption = "F1 with 95% bootstrap intervals. " if ci else "F1 without its interval at this width. "
    caption += (
        "Content F1: scored on what could be recovered from the reply. "
        "Pre-JSON: share of output spent before any JSON (thinking, preamble)."
    )
    hidden = [c.header for c in _columns(ci)[len(columns) :]]
    if hidden:
        caption += f" Not shown at this width: {', '.join(hidden)} (see report.html)."
    table = Table(
        title=title, title_justify="left", header_style="bold", caption=caption, caption_justify="left"
    )
    table.add_column("Model", justify="left", no_wrap=True)
    for column in columns:
        table.add_column(column.header if ci else column.stacked, justify="right", no_wrap=True)
    for m in summaries:
        if m.failure is not None:
            why = f"failed: {m.error_counts}" if m.error_kinds else "failed: no reply"
            name = f"{_escape(m.display_name)}\n[red]{_escape(why)}[/]"
            table.add_row(name, *(["[red]failed[/]"] + ["-"] * (len(columns) - 1))[: len(columns)])
        else:
            table.add_row(_escape(m.display_name), *(column.cell(m) for column in columns))
    return table


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _natural_width(table: Table) -> int:
    """The width the table takes when nothing is wrapped or cut."""
    from rich.console import Console
    from rich.measure import Measurement

    wide = Console(width=10_000, file=io.StringIO())
    return Measurement.get(wide, wide.options, table).maximum


def notes(summary: RunSummary) -> list[str]:
    """Lines a person should not miss: errors, truncations, thinking, format debt."""
    lines = []
    for m in summary.models:
        if m.failure is not None:
            first = f" - first error: {m.first_error[:300]}" if m.first_error else ""
            lines.append(
                f"{m.display_name}: {m.failure}; it has no score and is left out of the rankings{first}"
            )
            continue
        if m.error_kinds:
            lines.append(
                f"{m.display_name}: {sum(m.error_kinds.values())} requests failed ({m.error_counts}); "
                "not scored"
            )
        if m.speed.truncated:
            lines.append(f"{m.display_name}: {m.speed.truncated} replies hit the token limit (num_predict)")
        if m.speed.thinking_share >= MOSTLY_THINKING:
            lines.append(
                f"{m.display_name}: {m.speed.thinking_share:.0%} of its output came before any JSON "
                "(thinking)"
            )
        if m.score.has_format_debt:
            lines.append(
                f"{m.display_name}: format debt {m.score.format_debt:.2f} entity F1 - understood but not "
                "delivered as valid JSON (LoRA fixes this cheaply)"
            )
    return lines
