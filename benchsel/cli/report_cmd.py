"""`benchsel report` (report.md and a self-contained report.html for a run) and `benchsel compare`
(two runs on the same eval set, with a regression gate for CI)."""

from __future__ import annotations

from pathlib import Path

import click

from benchsel.cli.render import db_option

_out_option = click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Report directory.",
)


@click.command()
@click.argument("run_id")
@click.option("--format", "formats", default="md,html", show_default=True, help="md, html or md,html.")
@_out_option
@db_option
@click.option("--evalset", help="Score against this eval set instead of the run's own.")
@click.option("--vram", help="GPU memory to deploy on, e.g. 8GiB (without it VRAM is not checked).")
@click.option("--reserve", default="0", show_default=True, help="Memory kept for models that stay loaded.")
@click.option("--num-ctx", type=int, default=4096, show_default=True, help="Planned context per request.")
@click.option("--min-tps", type=float, help="Exclude models decoding slower than this (tokens/s).")
def report(
    run_id: str,
    formats: str,
    out: Path,
    db: Path | None,
    evalset: str | None,
    vram: str | None,
    reserve: str,
    num_ctx: int,
    min_tps: float | None,
) -> None:
    """Write reports/RUN_ID/report.md and a self-contained report.html: results with intervals,
    both selection rankings, plots and a per-case drill-down."""
    from benchsel.hardware import parse_bytes
    from benchsel.probe import with_measured
    from benchsel.report import parse_formats, write_report
    from benchsel.selection import Constraints, select
    from benchsel.store import Store
    from benchsel.summary import summarize_run

    wanted = parse_formats(formats)
    constraints = Constraints.of(
        vram_bytes=parse_bytes(vram) if vram else None,
        reserve_bytes=parse_bytes(reserve),
        num_ctx=num_ctx,
        min_tps=min_tps,
    )
    with Store(db) as store:
        summary = summarize_run(store, run_id, evalset=evalset)
        selection = with_measured(select(summary, constraints), store) if summary.models else None
    paths = write_report(summary, selection, out, wanted)
    for path in paths:
        click.echo(f"Wrote {path}")


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--format", "formats", default="md", show_default=True, help="md, html or md,html.")
@_out_option
@db_option
@click.option(
    "--fail-if-regress",
    "regress",
    metavar="METRIC[:TOLERANCE]",
    multiple=True,
    help="Exit 1 when METRIC drops from RUN_A to RUN_B by more than TOLERANCE, "
    "e.g. content_entity_f1:0.02 (repeatable).",
)
def compare(
    run_a: str, run_b: str, formats: str, out: Path, db: Path | None, regress: tuple[str, ...]
) -> None:
    """Compare RUN_B against RUN_A on the same eval set: paired bootstrap differences per model
    (base vs fine-tuned when each run has one model) and per-case wins and losses."""
    from benchsel.report import parse_formats
    from benchsel.report.compare import RegressionError, compare_runs, parse_regress, write_comparison
    from benchsel.report.compare_render import diff_rows, wins_text
    from benchsel.store import Store
    from benchsel.summary import summarize_run

    checks = [parse_regress(spec) for spec in regress]
    wanted = parse_formats(formats)
    with Store(db) as store:
        summary_a = summarize_run(store, run_a)
        summary_b = summarize_run(store, run_b)
    comparison = compare_runs(summary_a, summary_b)
    paths = write_comparison(comparison, out, wanted)
    for pair in comparison.pairs:
        click.echo(f"{pair.label} ({pair.cases} cases, B minus A):")
        for title, a, b, diff, _ in diff_rows(pair):
            click.echo(f"  {title:<24} {a:>9} -> {b:<9} {diff}")
        click.echo(f"  {wins_text(pair)}")
    for path in paths:
        click.echo(f"Wrote {path}")
    problems = [line for metric, tolerance in checks for line in comparison.regressions(metric, tolerance)]
    if problems:
        raise RegressionError("regression: " + "; ".join(problems))
