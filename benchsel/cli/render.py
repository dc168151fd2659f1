"""What the commands share: the console, the results table, formatting helpers and common options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from benchsel.scoring.metrics import Estimate
    from benchsel.scoring.scorecard import ModelScore
    from benchsel.summary import ModelSummary, RunSummary


MIN_WIDTH = 150

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run store (default: $BENCHSEL_DB or reports/benchsel.sqlite).",
)
"""The run store option every command that reads or writes runs shares."""


def backend_options(command: Any = None, *, several_hosts: bool = False) -> Any:
    """--backend, --host and --base-url: where the models are served (``several_hosts``: --host repeats)."""
    if command is None:
        return lambda command: backend_options(command, several_hosts=several_hosts)
    command = click.option("--base-url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8080/v1.")(
        command
    )
    host_help = "Ollama host (default: $OLLAMA_HOST or http://127.0.0.1:11434)."
    if several_hosts:
        host_help += " Repeat to spread the models over several: [NAME=][ollama:|openai:]URL."
    command = click.option("--host", multiple=several_hosts, help=host_help)(command)
    return click.option(
        "--backend",
        type=click.Choice(["auto", "ollama", "openai", "llamacpp"]),
        default="auto",
        show_default=True,
        help="auto: Ollama when it answers at OLLAMA_HOST, else the embedded llama.cpp engine.",
    )(command)


def console(stderr: bool = False) -> Console:
    """Rich console; when output is not a terminal (a pipe, a log), wide enough for the tables."""
    from rich.console import Console

    con = Console(stderr=stderr, highlight=False)
    if not con.is_terminal:
        con = Console(stderr=stderr, highlight=False, width=max(con.width, MIN_WIDTH))
    return con


def pct(estimate: Estimate) -> str:
    return f"{estimate.value:.0%}"


def num(estimate: Estimate, ci: bool = True) -> str:
    if not ci:
        return f"{estimate.value:.2f}"
    return f"{estimate.value:.2f} ({estimate.low:.2f}-{estimate.high:.2f})"


def rate(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def results_table(summaries: list[ModelSummary], title: str | None = None) -> Table:
    """The motivating case's table (DESIGN.md) plus schema-valid, content F1, latency and thinking."""
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        caption="F1 with 95% bootstrap intervals. Content F1: scored on what could be recovered from the "
        "reply. Pre-JSON: share of output spent before any JSON (thinking, preamble).",
        caption_justify="left",
    )
    for header in (
        "Model",
        "Params",
        "Valid JSON",
        "Schema",
        "Entity F1",
        "Recall",
        "Rel F1",
        "Content F1",
        "tok/s",
        "p50 s",
        "Pre-JSON",
    ):
        table.add_column(header, justify="left" if header == "Model" else "right", no_wrap=True)
    for m in summaries:
        s: ModelScore = m.score
        table.add_row(
            m.name,
            m.snapshot.parameter_size or "-",
            pct(s.valid_json),
            pct(s.schema_valid),
            num(s.as_is.entities.f1),
            num(s.as_is.entities.recall, ci=False),
            num(s.as_is.relationships.f1, ci=False),
            num(s.content.entities.f1),
            rate(m.speed.decode_tokens_per_s),
            rate(m.speed.latency_p50_s),
            f"{m.speed.thinking_share:.0%}",
        )
    return table


def notes(summary: RunSummary) -> list[str]:
    """Lines a person should not miss: errors, truncations, thinking, format debt."""
    lines = []
    for m in summary.models:
        if m.error_kinds:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(m.error_kinds.items()))
            lines.append(f"{m.name}: {sum(m.error_kinds.values())} requests failed ({kinds}); not scored")
        if m.speed.truncated:
            lines.append(f"{m.name}: {m.speed.truncated} replies hit the token limit (num_predict)")
        if m.speed.thinking_share >= 0.5:
            lines.append(
                f"{m.name}: {m.speed.thinking_share:.0%} of its output came before any JSON (thinking)"
            )
        if m.score.format_debt >= 0.05:
            lines.append(
                f"{m.name}: format debt {m.score.format_debt:.2f} entity F1 - understood but not delivered "
                "as valid JSON (LoRA fixes this cheaply)"
            )
    return lines
