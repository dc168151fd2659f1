"""report.html: one self-contained page (inline CSS, JS and SVG; a CSP that forbids every request).

Everything a model wrote reaches the page through Jinja2's autoescaping; only benchsel's own CSS, JS
and the SVG matplotlib drew are inserted as markup."""

from __future__ import annotations

import base64
import hashlib
import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel import __version__
from benchsel.report.drilldown import case_details
from benchsel.report.plots import Plot, format_debt, heatmap, predicted_vs_measured, quality_speed, vram
from benchsel.report.selection_view import SelectionView, fallback_cards, measured_vram
from benchsel.report.view import (
    Table,
    cases_line,
    cases_run,
    content_table,
    difficulty_table,
    metadata_rows,
    report_results_table,
    thinking_notes,
)
from benchsel.summary import RunSummary

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).parent / "templates"
CLIP_CHARS = 20_000
THINKING_CLIP_CHARS = 2_000


def clip(text: str, limit: int = CLIP_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n... ({len(text) - limit} more characters not shown)"


def f1_color(value: float | None) -> str:
    """Red (0) to amber to green (1); grey when there is no score."""
    if value is None or math.isnan(value):
        return "#8c959f"
    value = min(1.0, max(0.0, value))
    red, green = (int(200 * min(1.0, 2 * (1 - value))), int(150 * min(1.0, 2 * value)))
    return f"#{red:02x}{green:02x}30"


@cache
def environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
    )
    env.filters["clip"] = clip
    env.filters["clip_thinking"] = lambda text: clip(text, THINKING_CLIP_CHARS)
    env.filters["f1_color"] = f1_color
    return env


def static_text(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def script_hash(js: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")


def _kinds(table: Table) -> list[str]:
    kinds = []
    for i in range(len(table.columns)):
        sorts = [row[i].sort for row in table.rows if row[i].sort is not None]
        numeric = bool(sorts) and all(isinstance(s, int | float) for s in sorts)
        kinds.append("number" if numeric and i else "text")
    return kinds


def render_plots(summary: RunSummary, selection: SelectionView | None) -> list[Plot]:
    models = tuple(m for m in summary.models if not m.failed)  # a failed model has no figures to plot
    if not models:
        return []
    bars = selection.vram if selection is not None and selection.vram else measured_vram(summary)
    budget = selection.budget_bytes if selection is not None else None
    reserve = selection.reserve_bytes if selection is not None else None
    margin = selection.margin_bytes if selection is not None else None
    plots = [
        quality_speed(models),
        format_debt(models),
        vram(bars, budget, reserve, margin),
        heatmap(models, [case.id for case in cases_run(summary)]),
    ]
    if selection is not None and selection.measured:
        plots.append(predicted_vs_measured(selection.measured))
    return plots


def render_html(summary: RunSummary, selection: SelectionView | None) -> str:
    from markupsafe import Markup

    tables = {
        "results-table": report_results_table(summary.models),
        "content-table": content_table(summary.models),
        "difficulty-table": difficulty_table(summary.models),
    }
    js = static_text("report.js")
    plots = [
        Plot(p.key, p.title, p.caption, Markup(p.svg))  # noqa: S704 - matplotlib's own SVG, text escaped
        for p in render_plots(summary, selection)
    ]
    context: dict[str, Any] = {
        "run": summary.run,
        "cases_line": cases_line(summary),
        "models": summary.models,
        "cards": selection.cards if selection is not None else fallback_cards(summary),
        "selection": selection,
        "results": tables["results-table"],
        "content": tables["content-table"],
        "difficulty": tables["difficulty-table"],
        "table_kinds": {key: _kinds(table) for key, table in tables.items()},
        "plots": plots,
        "notes": thinking_notes(summary),
        "cases": case_details(summary),
        "metadata": metadata_rows(summary),
        "version": __version__,
        "css": Markup(static_text("report.css")),
        "js": Markup(js),
        "script_hash": script_hash(js),
    }
    return environment().get_template("report.html.j2").render(context)
