"""`benchsel evalset validate|stats|list|import`."""

from __future__ import annotations

from pathlib import Path

import click

from benchsel.cli import render


@click.group()
def evalset() -> None:
    """Validate, inspect, list and import eval sets."""


@evalset.command()
@click.argument("path")
@click.option(
    "--max-problems",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="List at most this many problems.",
)
def validate(path: str, max_problems: int) -> None:
    """Check an eval set directory (or bundled name) and list every problem, each as
    file:line: reason (up to --max-problems). Exit 2 when there is any.

    \b
    Examples:
      benchsel evalset validate extraction-v1
      benchsel evalset validate evalsets/my-set --max-problems 200
    """
    from benchsel.errors import EvalSetError
    from benchsel.evalset import validate_evalset

    result = validate_evalset(path, limit=max_problems)
    if len(result.problems) == 1 and not result.more:
        raise EvalSetError(result.problems[0])
    if result.problems:
        for problem in result.problems:
            click.echo(problem, err=True)
        total = len(result.problems) + result.more
        shown = f" (the first {len(result.problems)} are listed)" if result.more else ""
        raise EvalSetError(
            f"{result.root}: {total} problem{'s' if total != 1 else ''}{shown} - fix each line above"
        )
    render.console().print(
        f"ok: {result.name} v{result.version}, {result.cases} cases, content hash {result.content_hash[:12]}"
    )


@evalset.command()
@click.argument("path")
def stats(path: str) -> None:
    """Cases by difficulty, entities, entity types, relationships, relation labels, text lengths.

    \b
    Examples:
      benchsel evalset stats extraction-v1
      benchsel evalset stats evalsets/conll04
    """
    from rich.table import Table

    from benchsel.evalset import load_evalset
    from benchsel.evalset import stats as compute
    from benchsel.labels import label_inventory

    loaded = load_evalset(path)
    s = compute(loaded)
    con = render.console()
    con.print(f"[bold]{s.name}[/]: {s.cases} cases, {s.entities} entities, {s.relationships} relationships")
    con.print("by difficulty: " + ", ".join(f"{k} {v}" for k, v in s.by_difficulty.items()))
    con.print(f"cases without relationships: {s.cases_without_relationships}")
    con.print(
        f"text length (chars): min {s.text_chars_min}, median {s.text_chars_median}, max {s.text_chars_max}"
    )
    con.print(label_inventory(loaded.cases).lines()[0], soft_wrap=True)
    table = Table("Relation", "Count", header_style="bold", title="relation labels", title_justify="left")
    for label, count in list(s.relation_labels.items())[:25]:
        table.add_row(label, str(count))
    if len(s.relation_labels) > 25:
        table.add_row(f"... {len(s.relation_labels) - 25} more", "")
    con.print(table)


@evalset.command(name="list")
def list_() -> None:
    """The bundled eval sets (pass a name, or any eval set directory, to --evalset).

    \b
    Example:
      benchsel evalset list
    """
    from rich.table import Table

    from benchsel.evalset import bundled_evalsets, load_evalset

    table = Table("Name", "Cases", "Description", header_style="bold")
    for path in bundled_evalsets():
        loaded = load_evalset(path)
        first_sentence = loaded.manifest.description.split(": ")[0].split(". ")[0]
        table.add_row(loaded.name, str(len(loaded.cases)), first_sentence)
    render.console().print(table)


@evalset.command(name="import")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["spert", "jsonl"]),
    required=True,
    help="Input format: spert (SpERT JSON: tokens, entity spans, relations by index) or jsonl "
    "(one record per line, field names set below).",
)
@click.option("--text-field", default="text", show_default=True, help="jsonl: field holding the text.")
@click.option("--id-field", default="id", show_default=True, help="jsonl: field holding the id.")
@click.option("--entities-field", default="entities", show_default=True, help="jsonl: list of entities.")
@click.option("--entity-name-field", default="name", show_default=True, help="jsonl: an entity's name.")
@click.option("--entity-type-field", default="type", show_default=True, help="jsonl: an entity's type.")
@click.option("--relations-field", default="relations", show_default=True, help="jsonl: list of relations.")
@click.option("--head-field", default="head", show_default=True, help="jsonl: relation head (index or name).")
@click.option("--relation-field", default="type", show_default=True, help="jsonl: relation label.")
@click.option("--tail-field", default="tail", show_default=True, help="jsonl: relation tail (index or name).")
@click.argument("file", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def import_(fmt: str, file: Path, out_dir: Path, **fields: str) -> None:
    """Turn FILE (SpERT JSON as published for CoNLL04/SciERC/ADE, or generic JSONL) into an eval set
    directory OUT_DIR that `benchsel evalset validate` accepts.

    prompt.md and schema.json are written from the data set's own entity types and relation labels
    (relation labels in UPPER_SNAKE_CASE, as the scorer matches them), each with a one-line gloss:
    read prompt.md and sharpen the glosses before you benchmark. Difficulty is set by size: simple (at
    most 2 entities and 1 relationship), medium (at most 4 and 2), complex (more).

    \b
    Examples:
      benchsel evalset import --format spert conll04_test.json evalsets/conll04
      benchsel evalset import --format jsonl --text-field sentence --relations-field triples data.jsonl out/
      benchsel evalset stats evalsets/conll04
    """
    from benchsel.importers import FieldMap, import_file, skipped_lines

    mapping = FieldMap(**{key.removesuffix("_field"): value for key, value in fields.items()})
    report = import_file(file, out_dir, fmt, mapping)
    con = render.console()
    con.print(f"wrote {report.cases} cases to {report.out_dir}", soft_wrap=True)
    if report.skipped:
        con.print(f"[yellow]skipped {len(report.skipped)} records[/]:")
        for line in skipped_lines(report.skipped):
            con.print(f"  {line}", soft_wrap=True)
    for line in report.inventory.lines():
        con.print(line, soft_wrap=True)
    con.print(f"prompt.md and schema.json list these labels: {out_dir / 'prompt.md'}", soft_wrap=True)
