"""`benchsel report` (report.md and a self-contained report.html for a run) and `benchsel compare`
(two runs on the same eval set, with a regression gate for CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from benchsel.cli.options import (
    CONSTRAINT_FIELDS,
    constraint_options,
    constraint_values,
    db_option,
    given_on_command_line,
    other_evalset_option,
    report_dir_option,
)


@click.command()
@click.argument("run_id")
@click.option(
    "--format",
    "formats",
    default="md,html",
    show_default=True,
    help="Files to write, comma-separated: md, html, json, csv (json: metrics with intervals; csv: "
    "models.csv and cases.csv).",
)
@report_dir_option
@db_option
@other_evalset_option
@constraint_options(
    "GPU memory to deploy on, e.g. 8GiB (default: the run's selection.json, else not checked)."
)
@click.pass_context
def report(
    ctx: click.Context,
    /,
    run_id: str,
    formats: str,
    out: Path,
    db: Path | None,
    evalset: str | None,
    weights_file: Path | None,
    weight_pairs: tuple[str, ...],
    **options: Any,
) -> None:
    """Write reports/RUN_ID/report.md and a self-contained report.html: results with intervals,
    both selection rankings, plots and a per-case drill-down. RUN_ID may be `latest`.

    The rankings use the run's reports/RUN_ID/selection.json when `benchsel select` wrote one (its
    constraints and weights); options given here change only what they name.

    \b
    Examples:
      benchsel report latest
      benchsel report latest --vram 8GiB --reserve 3GiB --weight valid_json=0.2
      benchsel report 20261130-033430-8a0bdc --format json,csv
      benchsel report latest --format html --out site/
    """
    from benchsel.probe import with_measured
    from benchsel.report import parse_formats, write_report
    from benchsel.report.saved import report_selection
    from benchsel.store import Store
    from benchsel.summary import summarize_run

    wanted = parse_formats(formats)
    overrides = constraint_values(options, given_on_command_line(ctx, CONSTRAINT_FIELDS))
    with Store(db) as store:
        summary = summarize_run(store, run_id, evalset=evalset)
        selection = None
        if summary.models:
            selection, notes = report_selection(summary, out, overrides, weights_file, weight_pairs)
            selection = with_measured(selection, store)
            for line in notes:
                click.echo(line)
    paths = write_report(summary, selection, out, wanted)
    for path in paths:
        click.echo(f"Wrote {path}")


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--format", "formats", default="md", show_default=True, help="md, html or md,html.")
@report_dir_option
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
    (base vs fine-tuned when each run has one model) and per-case wins and losses.

    \b
    Examples:
      benchsel compare BASE_RUN FINETUNED_RUN
      benchsel compare BASE_RUN FINETUNED_RUN --format md,html
      benchsel compare BASE_RUN NEW_RUN --fail-if-regress content_entity_f1:0.02 --fail-if-regress valid_json
    """
    from benchsel.report import parse_formats
    from benchsel.report.compare import RegressionError, compare_runs, parse_regress
    from benchsel.report.compare_render import diff_rows, wins_text, write_comparison
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
