"""`benchsel score`: score replies produced elsewhere."""

from __future__ import annotations

from pathlib import Path

import click

from benchsel.cli import render


@click.command()
@click.option("--evalset", "-e", required=True, help="Bundled eval set name or directory.")
@click.option(
    "--predictions",
    "-p",
    required=True,
    type=click.Path(path_type=Path),
    help='JSONL, one {"id": ..., "output": ...} per line; output is the raw reply or an object. Each id '
    'once; several answers to one case each carry "repeat": 0, 1, ... (a repeated id without it is an '
    "error). Read line by line, lines up to 32 MiB; a UTF-8 byte-order mark is ignored.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write all metrics here, with a row per reply.",
)
@click.option("--strict", is_flag=True, help="Also require entity types to match.")
@click.option("--name", default="predictions", show_default=True, help="Name shown in the table.")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
def score(evalset: str, predictions: Path, json_out: Path | None, strict: bool, name: str, seed: int) -> None:
    """Score predictions made by any system against an eval set.

    \b
    Example:
      benchsel score --evalset extraction-v1 --predictions replies.jsonl --json metrics.json
    """
    from benchsel.gcpause import gc_paused

    # One pause for the whole command: scoring and writing each pause the collector, and enabling it
    # between them set off a pass over every scored reply just built (about a tenth of the command on
    # 10,000 replies). Everything built here lives until the command ends.
    with gc_paused():
        _score(evalset, predictions, json_out, strict, name, seed)


def _score(
    evalset: str, predictions: Path, json_out: Path | None, strict: bool, name: str, seed: int
) -> None:
    from benchsel.evalset import load_evalset
    from benchsel.scoring import score_predictions
    from benchsel.scoring.export import write_metrics
    from benchsel.summary import summary_of_score

    loaded = load_evalset(evalset)
    scored = score_predictions(
        loaded, predictions, strict=strict, seed=seed, keep_replies=json_out is not None
    )
    summary = summary_of_score(name, scored, backend="file")
    con = render.console()
    con.print(render.results_table([summary], title=f"{loaded.name}: {predictions}", width=con.width))
    missing = len(loaded.cases) - scored.cases
    if missing:
        con.print(f"[yellow]note[/] {missing} cases of {loaded.name} have no prediction (not scored)")
    if json_out:
        write_metrics(summary.score, json_out)
        con.print(f"metrics: {json_out}")
