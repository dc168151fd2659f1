"""`benchsel select` (rank a stored run under hardware constraints) and `benchsel models` (what a
backend can serve, with its estimated VRAM)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from benchsel import defaults
from benchsel.cli.options import bytes_option
from benchsel.cli.render import backend_options, db_option

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from benchsel.backends.demo import DemoModel
    from benchsel.selection import Candidate, Ranking, Selection

RANKING_TITLES = {"trainable_potential": "Trainable potential", "deploy_now": "Deploy now"}


def _console() -> Console:
    from benchsel.cli.render import console

    return console()


# ---------------------------------------------------------------- select


def resolve_vram(vram: str | None, echo: Callable[[str], None]) -> int:
    """--vram, else the largest detected GPU (said with ``echo``)."""
    from benchsel.hardware import format_bytes, vram_budget

    budget, gpu = vram_budget(vram)
    if gpu is not None:
        echo(f"Using GPU {gpu.index}: {gpu.name}, {format_bytes(gpu.total_bytes)} (pass --vram to override)")
    return budget


KV_CACHE_TYPES = ["f16", "bf16", "f32", "q8_0", "q4_0"]
# option name -> Constraints field; the sizes are parsed from strings such as 8GiB
CONSTRAINT_FIELDS = {
    "vram": "vram_bytes",
    "reserve": "reserve_bytes",
    "num_ctx": "num_ctx",
    "parallel": "parallel",
    "kv_cache": "kv_cache",
    "margin": "margin_bytes",
    "min_tps": "min_tps",
    "train_vram": "train_vram_bytes",
    "method": "method",
}
SIZE_OPTIONS = frozenset({"vram", "reserve", "margin", "train_vram"})


def num_ctx_option(what: str) -> Callable[[Any], Any]:
    """--num-ctx with llama.cpp's -c/--ctx-size aliases; ``what`` says what the context is for."""
    return click.option(
        "--num-ctx",
        "-c",
        "--ctx-size",
        "num_ctx",
        type=int,
        default=defaults.NUM_CTX,
        show_default=True,
        help=f"{what} (-c/--ctx-size as in llama.cpp).",
    )


def constraint_options(vram_help: str) -> Callable[[Any], Any]:
    """The constraint and weight options `select` and `report` share (one definition, one help text)."""
    options = (
        click.option("--vram", help=vram_help),
        click.option(
            "--reserve", default="0", show_default=True, help="Memory kept for models that stay loaded."
        ),
        num_ctx_option("Planned context per request"),
        click.option("--parallel", type=int, default=1, show_default=True, help="Planned parallel requests."),
        click.option(
            "--kv-cache",
            type=click.Choice(KV_CACHE_TYPES),
            default="f16",
            show_default=True,
            help="KV cache type (OLLAMA_KV_CACHE_TYPE).",
        ),
        click.option(
            "--margin",
            default="1GiB",
            show_default=True,
            help="Free VRAM llama.cpp keeps (added to estimates).",
        ),
        click.option("--min-tps", type=float, help="Exclude models decoding slower than this (tokens/s)."),
        click.option(
            "--train-vram", help="Training GPU memory, e.g. 16GiB: excludes bases that cannot train."
        ),
        click.option(
            "--method",
            type=click.Choice(["lora", "qlora"]),
            default="lora",
            show_default=True,
            help="Training method --train-vram is checked for.",
        ),
        click.option(
            "--weights", "weights_file", type=click.Path(path_type=Path), help="TOML or JSON weights file."
        ),
        click.option(
            "--weight", "weight_pairs", multiple=True, help="Override one weight: NAME=VALUE (repeatable)."
        ),
    )

    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def constraint_values(options: Mapping[str, Any], names: Iterable[str] = CONSTRAINT_FIELDS) -> dict[str, Any]:
    """Constraints fields from the options' values (sizes parsed), for the option ``names`` given."""
    return {
        CONSTRAINT_FIELDS[name]: bytes_option(f"--{name.replace('_', '-')}", options[name])
        if name in SIZE_OPTIONS
        else options[name]
        for name in names
    }


def given_on_command_line(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """The option names the user typed (or set in the environment / a config file), not defaults."""
    from click.core import ParameterSource

    typed = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.DEFAULT_MAP}
    return [name for name in names if ctx.get_parameter_source(name) in typed]


@click.command()
@click.argument("run_id")
@constraint_options("GPU memory to deploy on, e.g. 8GiB (default: the detected GPU).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=defaults.OUT_DIR,
    show_default=True,
    help="Report directory.",
)
@db_option
@click.option("--evalset", help="Score against this eval set instead of the run's own.")
def select(
    run_id: str,
    weights_file: Path | None,
    weight_pairs: tuple[str, ...],
    out: Path,
    db: Path | None,
    evalset: str | None,
    **options: Any,
) -> None:
    """Rank the models of RUN_ID for training (trainable potential) and for deploying now, under the
    hardware constraints, and write reports/RUN_ID/selection.json for `benchsel train` and `benchsel
    report`. RUN_ID may be `latest`.

    A model with no scored reply is listed as failed and ranked in neither list. When no candidate
    found anything on the task (every score above zero would come from format alone), there is no
    winner, and the output says why. Sizes need a unit: 8GiB, 512MiB, 8GB.

    \b
    Examples:
      benchsel select latest --vram 8GiB --reserve 3GiB
      benchsel select latest --vram 8GiB --min-tps 30 --train-vram 16GiB --method qlora
      benchsel select RUN_ID --vram 12GiB -c 8192 --weight valid_json=0.2
    """
    from benchsel import selection as sel
    from benchsel.probe import with_measured
    from benchsel.store import Store
    from benchsel.summary import summarize_run

    console = _console()
    weights = sel.load_weights(weights_file) if weights_file else sel.DEFAULT_WEIGHTS
    weights = sel.parse_weight_overrides(weight_pairs, weights)
    values = constraint_values(options, [name for name in CONSTRAINT_FIELDS if name != "vram"])
    constraints = sel.Constraints.of(vram_bytes=resolve_vram(options["vram"], console.print), **values)
    with Store(db) as store:
        summary = summarize_run(store, run_id, evalset=evalset)
        result = with_measured(sel.select(summary, constraints, weights), store)
    path = sel.write_selection(result, out / result.run_id / "selection.json")
    render_selection(result, console)
    console.print(f"Wrote {path}", soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def ranking_table(ranking: Ranking) -> Table:
    from rich.table import Table

    table = Table(title=RANKING_TITLES[ranking.name], title_justify="left", header_style="bold")
    for header, justify in (("#", "right"), ("Model", "left"), ("Score", "right"), ("Note", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for entry in ranking.entries:
        note = (
            "excluded"
            if entry.excluded
            else "found nothing"
            if not entry.found_gold
            else "thinking"
            if any(f.startswith("thinking") for f in entry.flags)
            else ""
        )
        table.add_row(str(entry.rank) if entry.rank else "-", escape(entry.label), f"{entry.score:.3f}", note)
    for failed in ranking.failed:
        table.add_row("-", escape(failed), "-", "failed")
    return table


def figures_table(selection: Selection) -> Table:
    from rich.table import Table

    from benchsel.hardware import format_bytes

    table = Table(title="Figures", title_justify="left", header_style="bold")
    for header in ("Model", "VRAM", "Source", "Estimated", "Headroom", "tok/s", "Thinking"):
        table.add_column(header, justify="left" if header in ("Model", "Source") else "right")
    for entry in selection.deploy_now.entries:
        vram = entry.vram

        def size(n: int | None) -> str:
            return "-" if n is None else format_bytes(n)

        table.add_row(
            escape(entry.label),
            size(vram.bytes_needed if vram else None),
            vram.label if vram else "unknown",
            size(vram.estimated_bytes if vram else None),
            size(entry.headroom_bytes),
            "-" if entry.decode_tokens_per_s is None else f"{entry.decode_tokens_per_s:.1f}",
            f"{entry.thinking_share:.0%}",
        )
    return table


def render_selection(selection: Selection, console: Console) -> None:
    """Both rankings side by side, the figures, then the winners and every model's reason."""
    from rich.table import Table

    side = Table.grid(padding=(0, 4))
    side.add_row(ranking_table(selection.trainable), ranking_table(selection.deploy_now))
    console.print(side)
    console.print(figures_table(selection))
    c = selection.constraints
    console.print(f"Constraints: {selection.constraints.describe()}", soft_wrap=True)
    for label, ranking in (("Train", selection.trainable), ("Deploy now", selection.deploy_now)):
        winner = ranking.winner
        if winner is None:
            console.print(f"{label}: {ranking.no_winner}", soft_wrap=True, markup=False)
        else:
            console.print(f"{label}: {winner.label} - {winner.reason}", soft_wrap=True, markup=False)
        if ranking.close_call is not None:
            console.print(f"  Close call: {ranking.close_call.text()}", soft_wrap=True, markup=False)
    for failed in selection.failed:
        console.print(f"Failed: {failed.label}: {failed.failure}", soft_wrap=True, markup=False)
    if selection.measured is not None:
        from benchsel.cli.probe_cmd import render_measured
        from benchsel.probe import MeasuredRanking

        assert isinstance(selection.measured, MeasuredRanking)
        render_measured(selection.measured, console)
    for entry in selection.deploy_now.entries:
        if entry.flags:
            console.print(f"Flag: {entry.label}: {'; '.join(entry.flags)}", soft_wrap=True, markup=False)
    console.print("Why each model ranks where it does (trainable potential):", soft_wrap=True)
    for entry in selection.trainable.entries:
        console.print(f"  {entry.rank or '-'}. {entry.label}: {entry.reason}", soft_wrap=True, markup=False)
    if c.vram_bytes is None:
        console.print("VRAM was not checked: pass --vram", soft_wrap=True)


@click.command()
@backend_options
@num_ctx_option("Context to estimate VRAM at")
@click.option("--parallel", type=int, default=1, show_default=True, help="Parallel requests to estimate for.")
@click.option(
    "--kv-cache",
    type=click.Choice(KV_CACHE_TYPES),
    default="f16",
    show_default=True,
    help="KV cache type (OLLAMA_KV_CACHE_TYPE).",
)
def models(
    backend: str, host: str | None, base_url: str | None, num_ctx: int, parallel: int, kv_cache: str
) -> None:
    """List the models a backend can serve: size, quantization, parameters, context, capabilities
    (thinking flagged) and estimated VRAM at --num-ctx, including the 1 GiB llama.cpp keeps free.
    Without Ollama (--backend auto), the embedded engine's demo models are listed.

    \b
    Examples:
      benchsel models
      benchsel models --num-ctx 8192 --kv-cache q8_0
      benchsel models --backend llamacpp
    """
    from benchsel.backends.factory import make_backend, served_models
    from benchsel.selection import Constraints, describe_candidates

    constraints = Constraints.of(num_ctx=num_ctx, parallel=parallel, kv_cache=kv_cache)
    served = make_backend(backend, host=host, base_url=base_url)
    try:
        candidates = describe_candidates(served, served_models(served, backend), constraints)
    finally:
        served.close()
    console = _console()
    shelf = _demo_shelf() if getattr(served, "name", backend) == "llamacpp" else None
    console.print(candidates_table(candidates, num_ctx, getattr(served, "name", backend), shelf))
    for candidate in candidates:
        if candidate.problem:
            console.print(f"{candidate.name}: {candidate.problem}", soft_wrap=True)


def _demo_shelf() -> dict[str, DemoModel]:
    from benchsel.backends.demo import DEMO_MODELS

    return dict(DEMO_MODELS)


def candidates_table(
    candidates: list[Candidate], num_ctx: int, backend: str, shelf: dict[str, DemoModel] | None = None
) -> Table:
    """One row a model; ``shelf`` (the embedded engine's demo models) adds licence and installed columns
    and gives a model that is not installed its size, quantization and parameters from the registry."""
    from rich.table import Table

    from benchsel.hardware import format_bytes

    table = Table(title=f"Models on {backend}", title_justify="left", header_style="bold")
    headers = ["Model", "Size", "Quant", "Params", "Context", "Capabilities", f"VRAM @ {num_ctx} (+margin)"]
    headers += ["Licence", "Installed"] if shelf is not None else []
    for header in headers:
        left = header in ("Model", "Quant", "Capabilities", "Licence", "Installed")
        table.add_column(header, justify="left" if left else "right")
    for c in candidates:
        s = c.snapshot
        demo = (shelf or {}).get(c.name)
        if s is None:
            known = [format_bytes(demo.size_bytes), demo.quantization, demo.parameters] if demo else ["-"] * 3
            row = [c.name, *known, "-", "unavailable", "-"]
        else:
            caps = ", ".join("THINKING" if cap == "thinking" else cap for cap in s.capabilities) or "-"
            row = [
                c.name,
                format_bytes(s.size_bytes) if s.size_bytes else "-",
                s.quantization or "-",
                s.parameter_size or "-",
                str(s.context_length) if s.context_length else "-",
                caps,
                format_bytes(c.estimate.total_bytes) if c.estimate else "-",
            ]
        if shelf is not None:
            row += [demo.licence if demo else "-", "yes" if s is not None else "no"]
        table.add_row(*row)
    return table
