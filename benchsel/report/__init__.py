"""Reports of a run (report.md, a self-contained report.html) and comparisons of two runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from benchsel.defaults import OUT_DIR
from benchsel.report.compare import Comparison, compare_runs
from benchsel.report.compare_render import write_comparison
from benchsel.report.formats import COMPARE_FORMATS, FORMATS, parse_formats

if TYPE_CHECKING:
    from benchsel.selection import Selection
    from benchsel.summary import RunSummary

__all__ = [
    "COMPARE_FORMATS",
    "FORMATS",
    "Comparison",
    "compare_runs",
    "parse_formats",
    "write_comparison",
    "write_report",
]


def write_report(
    summary: RunSummary,
    selection: Selection | None,
    out_dir: str | Path = OUT_DIR,
    formats: str | Iterable[str] = ("md", "html"),
) -> list[Path]:
    """Write ``<out_dir>/<run id>/report.md``, ``report.html``, ``metrics.json`` and/or ``models.csv``
    with ``cases.csv``; returns the paths written."""
    wanted = parse_formats(formats)
    from benchsel.paths import prepare_output_dir

    target = prepare_output_dir(Path(out_dir) / summary.run.id)
    written = []
    if "md" in wanted or "html" in wanted:
        from benchsel.report.selection_view import selection_view

        view = selection_view(summary, selection)
    if "md" in wanted:
        from benchsel.report.markdown import render_markdown

        path = target / "report.md"
        path.write_text(render_markdown(summary, view), encoding="utf-8")
        written.append(path)
    if "html" in wanted:
        from benchsel.report.html import render_html

        path = target / "report.html"
        path.write_text(render_html(summary, view), encoding="utf-8")
        written.append(path)
    if "json" in wanted:
        from benchsel.report.export import write_json

        written.append(write_json(summary, target))
    if "csv" in wanted:
        from benchsel.report.export import write_csv

        written.extend(write_csv(summary, target))
    return written
