"""report.md: the run's tables, the selection and the metadata as GitHub-flavoured Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from benchsel.report.selection_view import SelectionView
from benchsel.report.view import (
    Table,
    cases_line,
    content_table,
    difficulty_table,
    metadata_rows,
    report_results_table,
    thinking_notes,
)
from benchsel.summary import RunSummary

_ESCAPES = str.maketrans({"|": "\\|", "<": "&lt;", "&": "&amp;", "\n": " ", "`": "\\`"})


def md_text(text: str) -> str:
    """Text safe inside a Markdown table cell or line: no raw HTML, no broken table."""
    return text.translate(_ESCAPES)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def table_md(table: Table) -> str:
    return md_table([c.title for c in table.columns], table.texts())


def legend(table: Table) -> str:
    parts = [f"**{md_text(c.title)}**: {md_text(c.help)}" for c in table.columns if c.help]
    return "; ".join(parts) + "." if parts else ""


def _selection_md(view: SelectionView) -> list[str]:
    out = ["## Selection", ""]
    if view.constraints:
        out += ["Constraints: " + md_text(view.constraints), ""]
    for ranking in view.rankings:
        out += [f"### {md_text(ranking.title)}", "", md_text(ranking.description), ""]
        if ranking.rows:
            out += [md_table(["Rank", "Model", "Score", "Why"], ranking.rows), ""]
        else:
            out += ["No model passed the constraints.", ""]
    if view.excluded:
        out += ["### Excluded", "", md_table(["Model", "Reason"], view.excluded), ""]
    if view.vram_rows:
        out += ["### VRAM", "", md_table(list(view.vram_headers), view.vram_rows), ""]
    out += [md_text(note) for note in view.notes]
    return out


def _verdict_md(view: SelectionView | None) -> list[str]:
    if view is None:
        return [
            "No selection was made for this report: pass `--vram` (and `--reserve`) to "
            "`benchsel report` or run `benchsel select` to rank the models.",
            "",
        ]
    out = []
    for card in view.cards:
        out.append(f"- **{md_text(card.title)}**: **{md_text(card.value)}** - {md_text(card.detail)}")
    return [*out, ""]


def render_markdown(summary: RunSummary, selection: SelectionView | None) -> str:
    run = summary.run
    models = summary.models
    results = report_results_table(models)
    lines = [
        f"# benchsel report: run {md_text(run.id)}",
        "",
        f"Eval set **{md_text(run.evalset_name)}** ({cases_line(summary)}, "
        f"hash `{run.evalset_hash[:12]}`), {len(models)} models on {md_text(run.backend)}, "
        f"{md_text(run.created_at)}.",
        "",
        "## Verdict",
        "",
        *_verdict_md(selection),
        "## Results",
        "",
        table_md(results),
        "",
        "Intervals are 95%: Wilson for rates, a bootstrap over cases for F1 and recall. " + legend(results),
        "",
        "## Content view",
        "",
        "Scores on the JSON recovered from every reply (code fences, prose and thinking stripped): "
        "what each model understood, whatever its format.",
        "",
        table_md(content_table(models)),
        "",
        "## By difficulty",
        "",
        table_md(difficulty_table(models)),
        "",
    ]
    if selection is not None:
        lines += _selection_md(selection) + [""]
    notes = thinking_notes(summary)
    lines += ["## Thinking and truncation", ""]
    lines += [f"- {md_text(n)}" for n in notes] or ["No model thought aloud or ran out of tokens."]
    lines += ["", "## Run metadata", "", md_table(["Field", "Value"], metadata_rows(summary)), ""]
    return "\n".join(lines)
