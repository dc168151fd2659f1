"""`benchsel run` and `benchsel runs`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from benchsel import defaults
from benchsel.cli import render
from benchsel.cli.options import (
    Bounded,
    HiddenAliasOption,
    backend_options,
    config_option,
    db_option,
    ray_option,
    report_dir_option,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from benchsel.runner import Event


def short_name(model: str) -> str:
    from benchsel.summary import short_name as short

    return short(model)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def run_progress(console: Console) -> Progress:
    """One bar per benchmarked model: cases done and decode speed (run, and train's evaluation)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tps]}"),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, transient=False)


class ProgressPrinter:
    """Turns runner events into one rich progress bar per model (cases done, cases/s, tok/s)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.tokens: dict[str, tuple[int, float]] = {}

    def __call__(self, event: Event) -> None:
        from benchsel import runner
        from benchsel.multihost import HostFailed

        match event:
            case runner.RunStarted(run=run, resumed=resumed):
                verb = "resuming" if resumed else "run"
                self.progress.console.print(f"{verb} [bold]{run.id}[/] on {run.evalset_name} ({run.backend})")
            case runner.ModelStarted(model=model, backend=backend, total=total, already_done=done):
                self.tasks[model] = self.progress.add_task(
                    f"{escape(short_name(model))} [dim]({backend})[/]", total=total, completed=done, tps=""
                )
                self.tokens[model] = (0, 0.0)
            case runner.ModelLoaded(model=model, load_s=load_s):
                self.progress.console.print(f"  {escape(short_name(model))}: loaded in {load_s:.1f} s")
            case runner.ModelWarmed(model=model, cold_prefill=cold) if cold and cold.tokens_per_s:
                self.progress.console.print(
                    f"  {escape(short_name(model))}: prompt prefix cached, "
                    f"cold prefill {cold.tokens_per_s:.0f} tok/s"
                )
            case runner.ReplyStored(model=model, reply=reply):
                tokens, seconds = self.tokens.get(model, (0, 0.0))
                if reply is not None and reply.eval_duration_ns:
                    tokens, seconds = tokens + reply.eval_count, seconds + reply.eval_duration_ns / 1e9
                    self.tokens[model] = (tokens, seconds)
                task = self.progress.tasks[self.tasks[model]]
                parts = [
                    f"{task.speed:.2f} cases/s" if task.speed else "",
                    f"{tokens / seconds:.0f} tok/s" if seconds else "",
                ]
                self.progress.update(self.tasks[model], advance=1, tps="  ".join(p for p in parts if p))
            case runner.Retrying(model=model, case_id=case_id, attempt=attempt, error=error):
                self.progress.console.print(f"  [yellow]retry {attempt}[/] {model} {case_id}: {error}")
            case HostFailed(host=host, model=model, error=error, moved_to=moved_to):
                where = f"its cases move to {moved_to}" if moved_to else "no other host has it"
                self.progress.console.print(
                    f"  [red]host {host} failed[/] running {model} ({error}); {where}"
                )
            case _:
                pass

    def pulling(self, model: str) -> Any:
        """A progress callback for ``ollama pull`` of ``model`` (bytes of the layer being pulled)."""
        task = self.progress.add_task(f"pull {model}", total=None, tps="")

        def update(part: Any) -> None:
            self.progress.update(task, total=part.total, completed=part.completed or 0, tps=part.status)

        return update


@click.command()
@click.option("--models", "-m", required=True, help="Comma-separated models, e.g. gemma3:4b,gemma4:e2b.")
@click.option(
    "--evalset", "-e", default=defaults.EVALSET, show_default=True, help="Bundled eval set name or directory."
)
@backend_options(several_hosts=True)
@click.option(
    "--hosts",
    "hosts_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A hosts.toml of [[host]] tables (name, url, backend, gpu_memory): one run over all of them.",
)
@ray_option("Run each model as a Ray task")
@click.option("--ray-gpus", type=float, default=0.0, show_default=True, help="GPUs each Ray task needs.")
@click.option(
    "--response-format",
    "--format",
    "format_",
    cls=HiddenAliasOption,
    hidden_aliases=("--format",),
    type=click.Choice(["none", "json", "schema"]),
    default="none",
    show_default=True,
    help="Constraint on the model's reply. none measures the model's own format skill; schema shows "
    "constrained decoding.",
)
@click.option(
    "--think",
    type=click.Choice(["auto", "off", "on"]),
    default="auto",
    show_default=True,
    help="Thinking for capable models (auto: the model's default).",
)
@click.option(
    "--repeats", type=Bounded("repeats"), default=1, show_default=True, help="Times each case is sent."
)
@click.option(
    "-j",
    "--concurrency",
    type=Bounded("concurrency", words=("auto",)),
    default="1",
    show_default=True,
    help="Concurrent requests per model, also the embedded engine's slots; 'auto' picks for the hardware.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=Bounded("timeout_s"),
    default=300.0,
    show_default=True,
    help="Seconds per request (above 0).",
)
@click.option(
    "--retries",
    type=Bounded("retries"),
    default=3,
    show_default=True,
    help="Retries for transport failures only.",
)
@click.option(
    "--num-ctx",
    "-c",
    "--ctx-size",
    "num_ctx",
    type=Bounded("num_ctx"),
    help="Context length (default: the eval set's; -c/--ctx-size as in llama.cpp).",
)
@click.option(
    "--num-predict",
    "-n",
    "num_predict",
    type=Bounded("num_predict"),
    help="Token limit per reply (default: the eval set's).",
)
@click.option(
    "--temperature",
    type=Bounded("temperature"),
    help="Sampling temperature (default: the eval set's, 0).",
)
@click.option("--seed", type=int, help="Sampling seed (default: the eval set's).")
@click.option("--limit", type=Bounded("limit"), help="Only the first N cases (a quick look; at least 1).")
@click.option(
    "--threads",
    type=Bounded("threads"),
    help="CPU threads for the embedded engine (default: one per physical core).",
)
@click.option(
    "--no-prompt-cache",
    "no_prompt_cache",
    is_flag=True,
    help="Prefill every case's whole prompt (default: the shared system prompt is cached once per model).",
)
@click.option(
    "--lora",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A GGUF LoRA adapter (from `benchsel train`) served on each model; runs as BASE+ADAPTER-NAME.",
)
@click.option("--fresh", is_flag=True, help="Ignore stored replies and send everything again.")
@click.option("--pull", is_flag=True, help="Pull models Ollama does not have yet.")
@db_option
@report_dir_option
@click.option("--no-report", is_flag=True, help="Do not write report.md / report.html.")
@config_option
def run(**kwargs: Any) -> None:
    """Benchmark models on an eval set. Every reply is stored as it arrives; re-running the same command
    resumes an interrupted run.

    \b
    Examples:
      benchsel run --models gemma3:4b,gemma4:e2b
      benchsel run --models smollm2:135m,gemma3:270m --backend llamacpp --limit 5
      benchsel run --models my-model --backend openai --base-url http://127.0.0.1:8080/v1
      benchsel run --config run.toml --limit 3     # options from a file; the command line wins
      benchsel run --models gemma3:4b,qwen3:4b@gpu2 --host gpu1=http://10.0.0.5:11434 --host gpu2=http://10.0.0.6:11434
      benchsel run --models gemma3:4b,gemma4:e2b --ray 10.0.0.5:6379
      benchsel run --models smollm2:135m --lora reports/train-RUN/adapter.gguf --limit 20
    """

    from benchsel import api
    from benchsel.errors import RunFailed

    out: Path = kwargs.pop("out")
    no_report: bool = kwargs.pop("no_report")
    kwargs["format"] = kwargs.pop("format_")
    kwargs["prompt_cache"] = not kwargs.pop("no_prompt_cache")
    con = render.console()
    with run_progress(con) as progress:
        printer = ProgressPrinter(progress)
        summary = api.run(kwargs.pop("models"), on_event=printer, on_pull=printer.pulling, **kwargs)
    served = {
        f"{m.display_name} on {m.backend}" + (f" at {m.host}" if m.host else "") for m in summary.models
    }
    backends = ", ".join(sorted(served))
    title = f"{summary.evalset.name}, run {summary.run.id} ({backends})"
    con.print(render.results_table(list(summary.models), title=title, width=con.width))
    for line in render.notes(summary):
        con.print(f"[yellow]note[/] {escape(line)}")
    for line in speed_notes(summary):
        con.print(f"[yellow]note[/] {escape(line)}")
    if not no_report:
        for path in _write_report(summary, out):
            con.print(f"report: {path}")
    if summary.nothing_scored:
        raise RunFailed(
            f"run {summary.run.id}: no model produced a scored reply, so nothing was measured - "
            "read the errors above, fix the cause (the server, --num-ctx, --timeout) and run again"
        )
    con.print(f"run id: [bold]{summary.run.id}[/]  (next: benchsel select {summary.run.id} --vram 8GiB)")


def speed_notes(summary: Any) -> list[str]:
    """The prompt-cache setting, and each model whose speed was measured under CPU contention."""
    from benchsel.prefix_cache import describe_setting

    lines = [describe_setting(summary.run.options, summary.run.backend)]
    for m in summary.models:
        if m.speed.contended:
            reason = m.speed.contention.reason
            lines.append(f"{m.display_name}: speed measured under CPU contention ({reason})")
    return lines


def _write_report(summary: Any, out: Path) -> list[Path]:
    from benchsel.report import write_report
    from benchsel.report.saved import selection_after_run

    selection, note = selection_after_run(summary, out)
    if note is not None:
        render.console().print(f"[yellow]note[/] {note}", soft_wrap=True)
    return list(write_report(summary, selection, out, ("md", "html")))


@click.command()
@db_option
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
def runs(db: Path | None, limit: int) -> None:
    """List stored runs, newest first. Any command that takes RUN_ID also takes `latest`.

    \b
    Examples:
      benchsel runs
      benchsel runs --limit 5 --db reports/benchsel.sqlite
    """
    from rich.table import Table

    from benchsel.store import Store

    with Store(db) as store:
        records = store.runs(limit)
        table = Table(header_style="bold")
        for header in ("Run", "Created", "Eval set", "Backend", "Models", "Replies", "Status"):
            table.add_column(header)
        for record in records:
            answered, failed = store.result_counts(record.id)
            table.add_row(
                record.id,
                record.created_at.replace("T", " ")[:19],
                record.evalset_name,
                record.backend,
                ", ".join(short_name(model) for model in record.models),
                str(answered + failed),
                record.status,
            )
    con = render.console()
    if not records:
        con.print("no runs yet - start one with `benchsel run --models ...`")
        return
    con.print(table)
    if any(record.status == "interrupted" for record in records):
        con.print("interrupted runs resume: run the same `benchsel run` command again")
