"""Reports of a run (report.md, a self-contained report.html) and comparisons of two runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from benchsel.errors import UsageError

if TYPE_CHECKING:
    from benchsel.report.compare import Comparison
    from benchsel.selection import Selection
    from benchsel.summary import RunSummary

FORMATS = ("md", "html", "json", "csv")
COMPARE_FORMATS = ("md", "html")

__all__ = ["FORMATS", "compare_runs", "parse_formats", "write_comparison", "write_report"]


def parse_formats(formats: str | Iterable[str], allowed: tuple[str, ...] = FORMATS) -> tuple[str, ...]:
    """'html,md' or ['md'] -> ('md', 'html') in a fixed order; refuses anything not in ``allowed``."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {name.strip().lower() for name in names if name.strip()}
    wanted = {"md" if name == "markdown" else name for name in wanted}
    unknown = sorted(wanted - set(allowed))
    if unknown or not wanted:
        raise UsageError(
            f"unknown report format {', '.join(unknown) or '(none)'} - use {', '.join(allowed)} "
            "or several, comma-separated (md,html)"
        )
    return tuple(name for name in allowed if name in wanted)


def write_report(
    summary: RunSummary,
    selection: Selection | None,
    out_dir: str | Path = "reports",
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


def compare_runs(summary_a: RunSummary, summary_b: RunSummary) -> Comparison:
    from benchsel.report.compare import compare_runs as compare

    return compare(summary_a, summary_b)


def write_comparison(
    comparison: Comparison, out_dir: str | Path = "reports", formats: str | Iterable[str] = ("md",)
) -> list[Path]:
    from benchsel.report.compare import write_comparison as write

    return write(comparison, out_dir, formats)
