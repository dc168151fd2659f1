"""`benchsel score`: score replies produced elsewhere."""

from __future__ import annotations

import json
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
    help='JSONL, one {"id": ..., "output": ...} per line; output is the raw reply or an object.',
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write all metrics here."
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
    from benchsel.backends.base import Reply
    from benchsel.evalset import load_evalset
    from benchsel.scoring.export import write_metrics
    from benchsel.scoring.predictions import load_predictions
    from benchsel.store import StoredResult
    from benchsel.summary import summarize_model

    loaded = load_evalset(evalset)
    replies = load_predictions(predictions, known_ids=set(loaded.by_id))
    results = [
        StoredResult("", name, r.case_id, r.repeat, "", Reply(content=_text(r.output))) for r in replies
    ]
    summary = summarize_model(loaded, name, results, backend="file", strict=strict, seed=seed)
    con = render.console()
    con.print(render.results_table([summary], title=f"{loaded.name}: {predictions}"))
    missing = len(loaded.cases) - len({r.case_id for r in replies})
    if missing:
        con.print(f"[yellow]note[/] {missing} cases of {loaded.name} have no prediction (not scored)")
    if json_out:
        write_metrics(summary.score, json_out)
        con.print(f"metrics: {json_out}")


def _text(output: str | dict[str, object] | None) -> str:
    return output if isinstance(output, str) else json.dumps(output)
