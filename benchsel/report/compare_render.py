"""A comparison as Markdown and as a self-contained HTML page."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from benchsel import __version__
from benchsel.defaults import OUT_DIR
from benchsel.report.compare import Comparison, MetricDiff, ModelComparison
from benchsel.report.formats import COMPARE_FORMATS, parse_formats
from benchsel.report.markdown import md_table, md_text
from benchsel.report.view import NA
from benchsel.scoring.registry import Metric

TOP_CHANGES = 10
DIFF_HEADERS = ("Metric", "Run A", "Run B", "Difference (B - A) [95% CI]", "P(B not better)")


def diff_headers(c: Comparison) -> tuple[str, ...]:
    """DIFF_HEADERS with the comparison's names for A and B (e.g. base / fine-tune)."""
    a, b = (label[:1].upper() + label[1:] for label in c.labels)
    return ("Metric", a, b, "Difference (B - A) [95% CI]", "P(B not better)")


def fmt_diff(metric: Metric, d: MetricDiff) -> str:
    e = d.difference
    if e is None:
        return NA
    scale, spec, unit = (100, "+.1f", " pp") if metric.kind == "rate" else (1, "+.3f", "")
    if metric.kind == "tps":
        spec = "+.1f"
    return f"{e.value * scale:{spec}}{unit} [{e.low * scale:{spec}}, {e.high * scale:{spec}}]"


def diff_rows(pair: ModelComparison) -> list[tuple[str, ...]]:
    return [
        (
            d.metric.title,
            d.metric.format(d.a, NA),
            d.metric.format(d.b, NA),
            fmt_diff(d.metric, d),
            NA if d.p_not_better is None else f"{d.p_not_better:.3f}",
        )
        for d in pair.diffs
    ]


def change_rows(pair: ModelComparison) -> list[tuple[str, ...]]:
    changed = sorted((c for c in pair.changes if abs(c.change) > 1e-9), key=lambda c: -abs(c.change))
    return [
        (c.case_id, c.difficulty, f"{c.a:.2f}", f"{c.b:.2f}", f"{c.change:+.2f}")
        for c in changed[:TOP_CHANGES]
    ]


def wins_text(pair: ModelComparison) -> str:
    return (
        f"Per case (content entity F1), run B is better on {pair.wins}, worse on {pair.losses} "
        f"and the same on {pair.ties} of {pair.cases} cases."
    )


def header_lines(c: Comparison) -> list[str]:
    return [
        f"{c.labels[0][:1].upper() + c.labels[0][1:]}: {c.run_a.id} ({c.run_a.created_at}); "
        f"{c.labels[1]}: {c.run_b.id} ({c.run_b.created_at}).",
        f"Eval set {c.evalset_name} (hash {c.evalset_hash[:12]}). Differences are B minus A with paired "
        "bootstrap 95% intervals over the cases both runs answered.",
    ]


def comparison_markdown(c: Comparison) -> str:
    lines = [f"# benchsel comparison: {md_text(c.run_a.id)} vs {md_text(c.run_b.id)}", ""]
    lines += [md_text(line) for line in header_lines(c)] + [""]
    for pair in c.pairs:
        lines += [
            f"## {md_text(pair.label)}",
            "",
            md_table(diff_headers(c), diff_rows(pair)),
            "",
            md_text(wins_text(pair)),
        ]
        rows = change_rows(pair)
        if rows:
            lines += ["", md_table(("Case", "Difficulty", "Run A", "Run B", "Change"), rows)]
        lines.append("")
    for label, names in (("Only in run A", c.only_a), ("Only in run B", c.only_b)):
        if names:
            lines += [f"{label}: {md_text(', '.join(names))}.", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class _PairView:
    label: str
    rows: list[tuple[str, ...]]
    wins: str
    changes: list[tuple[str, ...]]


def comparison_html(c: Comparison) -> str:
    from markupsafe import Markup

    from benchsel.report.html import environment, static_text

    pairs = [_PairView(p.label, diff_rows(p), wins_text(p), change_rows(p)) for p in c.pairs]
    return (
        environment()
        .get_template("compare.html.j2")
        .render(
            comparison=c,
            header=header_lines(c),
            pairs=pairs,
            diff_headers=diff_headers(c),
            css=Markup(static_text("report.css")),
            version=__version__,
        )
    )


def write_comparison(
    comparison: Comparison, out_dir: str | Path = OUT_DIR, formats: str | Iterable[str] = ("md",)
) -> list[Path]:
    """Write ``<out_dir>/compare-<A>-<B>/compare.md`` and/or ``compare.html``."""
    wanted = parse_formats(formats, COMPARE_FORMATS)
    target = Path(out_dir) / f"compare-{comparison.run_a.id}-{comparison.run_b.id}"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    if "md" in wanted:
        written.append(target / "compare.md")
        written[-1].write_text(comparison_markdown(comparison), encoding="utf-8")
    if "html" in wanted:
        written.append(target / "compare.html")
        written[-1].write_text(comparison_html(comparison), encoding="utf-8")
    return written
