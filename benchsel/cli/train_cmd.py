"""`benchsel train`: LoRA-train the selected base, export and register it, and measure it again;
`benchsel train data generate|check`: build and check training data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from benchsel import defaults
from benchsel.cli.options import db_option

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from benchsel.loop import LoopOutcome
    from benchsel.train.lora import TrainProgress, TrainSettings
    from benchsel.train.pipeline import TrainPlan

FORMAT_CHOICES = ("auto", "chat", "sharegpt", "alpaca", "evalset")
# CLI flag -> TrainSettings field
SETTING_FLAGS = {
    "r": "r",
    "alpha": "alpha",
    "epochs": "epochs",
    "lr": "learning_rate",
    "max_steps": "max_steps",
    "batch": "per_device_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "max_seq_len": "max_seq_len",
}


def _default(field_name: str) -> Any:
    """A training setting's default, as TrainSettings defines it (help texts show it)."""
    from benchsel.train.lora import TrainSettings

    return TrainSettings.default(field_name)


def _console() -> Console:
    from benchsel.cli.render import console

    return console()


@click.group(invoke_without_command=True)
@click.option("--base", help="Ollama tag, Hugging Face model directory, GGUF file, or the demo smollm2:135m.")
@click.option(
    "--from-selection",
    type=click.Path(dir_okay=False, path_type=Path),
    help="selection.json from `benchsel select`: train its winner, compare with its run; options given "
    "here win over it.",
)
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), help="Training data (JSONL).")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option("--evalset", help="Eval set for the leakage check and the evaluation [default: the run's].")
@click.option("--drop-leaks", is_flag=True, help="Drop training examples that repeat eval-set texts.")
@click.option("--n", "synthetic_n", type=int, default=600, show_default=True, help="Synthetic examples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data and its split.")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="train.toml settings.")
# The names PEFT (LoraConfig r, lora_alpha) and TRL (SFTConfig per_device_train_batch_size, ...) users type
# work beside the short ones.
@click.option("--r", "--lora-r", "r", type=int, help=f"LoRA rank [{_default('r')}].")
@click.option("--alpha", "--lora-alpha", "alpha", type=int, help=f"LoRA alpha [{_default('alpha')}].")
@click.option(
    "--epochs", "--num-train-epochs", "epochs", type=float, help=f"Epochs [{_default('epochs'):g}]."
)
@click.option(
    "--lr", "--learning-rate", "lr", type=float, help=f"Learning rate [{_default('learning_rate'):g}]."
)
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option(
    "--batch",
    "--per-device-train-batch-size",
    "batch",
    type=int,
    help=f"Per-device batch size [{_default('per_device_batch_size')}].",
)
@click.option(
    "--grad-accum",
    "--gradient-accumulation-steps",
    "grad_accum",
    type=int,
    help=f"Gradient accumulation steps [{_default('gradient_accumulation_steps')}].",
)
@click.option(
    "--max-seq-len",
    "--max-length",
    "max_seq_len",
    type=int,
    help=f"Longest example in tokens [{_default('max_seq_len')}].",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help=f"[{defaults.OUT_DIR}/train-<time>]"
)
@click.option(
    "--register", "register_name", metavar="NAME", help="Create NAME in Ollama (checked before training)."
)
@click.option(
    "--register-mode",
    type=click.Choice(["merged", "adapter"]),
    default="merged",
    show_default=True,
    help="merged: FROM a merged GGUF made by llama-export-lora (any Ollama); adapter: FROM base + ADAPTER.",
)
@click.option("--merged", is_flag=True, help="Also save the merged model as safetensors.")
@click.option("--evaluate", is_flag=True, help="Benchmark the fine-tune and compare it with the base.")
@click.option("--host", help="Ollama host [OLLAMA_HOST].")
@db_option
@click.option("--limit", type=int, help="Evaluate on the first N cases only.")
@click.option("--num-predict", type=int, help="Token limit per answer when evaluating.")
@click.option("--threads", type=int, help="llama-server threads when evaluating on the embedded engine.")
@click.pass_context
def train(ctx: click.Context, /, **options: Any) -> None:
    """Train a LoRA on the selected base (or --base), export a GGUF adapter and a Modelfile, register
    it with Ollama (--register NAME) and re-run the eval set on it (--evaluate).

    \b
    Examples:
      benchsel train --from-selection reports/RUN/selection.json --evaluate
      benchsel train --base smollm2:135m --max-steps 60 --evaluate --limit 20
      benchsel train --base gemma3:4b --data my.jsonl --register extractor --evaluate
      benchsel train data generate --n 600 --out train.jsonl
      benchsel train data check train.jsonl --evalset extraction-v1
    """
    if ctx.invoked_subcommand is not None:
        return
    if not options["base"] and not options["from_selection"]:
        raise click.UsageError("name the base: --base TAG|DIR|FILE or --from-selection selection.json")
    console = _console()
    plan = _plan(options)
    outcome = _run_with_progress(plan, console)
    _render_outcome(outcome, console)


def _settings(options: dict[str, Any]) -> TrainSettings:
    from benchsel.train.lora import TrainSettings

    overrides = {field: options[flag] for flag, field in SETTING_FLAGS.items()}
    names = {field: f"--{flag.replace('_', '-')}" for flag, field in SETTING_FLAGS.items()}
    return TrainSettings.merged(options["config"], overrides, names)


def _plan(options: dict[str, Any]) -> TrainPlan:
    from benchsel.train.pipeline import TrainPlan

    return TrainPlan(
        base=options["base"],
        from_selection=options["from_selection"],
        data=options["data"],
        fmt=options["fmt"],
        evalset=options["evalset"],
        drop_leaks=options["drop_leaks"],
        settings=_settings(options),
        out_dir=options["out"],
        register=options["register_name"],
        register_mode=options["register_mode"],
        merged=options["merged"],
        evaluate=options["evaluate"],
        synthetic_n=options["synthetic_n"],
        seed=options["seed"],
        host=options["host"],
        db=options["db"],
        eval_limit=options["limit"],
        eval_num_predict=options["num_predict"],
        threads=options["threads"],
    )


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("[bold]training[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "loss {task.fields[loss]}  val {task.fields[val]}  "
            "{task.fields[tps]} tok/s  ETA {task.fields[eta]}"
        ),
        console=console,
        transient=False,
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _run_with_progress(plan: TrainPlan, console: Console) -> LoopOutcome:
    """Training under a training bar; the evaluation afterwards under one bar per benchmarked model."""

    from benchsel.cli.run_cmd import ProgressPrinter, run_progress
    from benchsel.loop import evaluate, with_evaluation
    from benchsel.train.pipeline import train as run_pipeline

    progress = _progress(console)
    task = progress.add_task("train", total=None, loss="-", val="-", tps="-", eta="-", visible=False)
    last_val: list[float] = []

    def on_progress(event: TrainProgress) -> None:
        if event.eval_loss is not None:
            last_val.append(event.eval_loss)
            progress.console.print(
                f"validation loss {event.eval_loss:.4f} at step {event.step} (epoch {event.epoch:.2f})"
            )
        fields: dict[str, Any] = {
            "loss": _fmt(event.loss, ".4f") if event.loss is not None else progress.tasks[0].fields["loss"],
            "val": _fmt(last_val[-1] if last_val else None, ".4f"),
            "tps": _fmt(event.tokens_per_s, ".0f"),
            "eta": _eta(event.eta_s),
        }
        progress.update(task, completed=event.step, total=event.max_steps, visible=True, **fields)

    with progress:
        outcome = run_pipeline(
            plan, on_stage=lambda text: progress.console.print(text), on_progress=on_progress
        )
    if not plan.evaluate:
        return with_evaluation(outcome, None)
    with run_progress(console) as bars:
        printer = ProgressPrinter(bars)
        evaluation = evaluate(plan, outcome, lambda text: bars.console.print(text), printer)
    return with_evaluation(outcome, evaluation)


def _render_outcome(outcome: LoopOutcome, console: Console) -> None:
    from benchsel.hardware import format_bytes

    result = outcome.training
    best = _fmt(result.best_eval_loss, ".4f")
    console.print(
        f"Trained {outcome.fine_tune_name}: {result.steps} steps in {result.train_seconds:.0f} s "
        f"({result.tokens_per_s:.0f} tok/s, {result.device}{', QLoRA' if result.qlora else ''}, "
        f"peak memory {format_bytes(result.peak_memory_bytes)}); "
        f"best validation loss {best}{' (stopped early)' if result.stopped_early else ''}"
    )
    console.print(f"Adapter: {outcome.adapter_gguf}")
    console.print(f"Modelfile: {outcome.modelfile}")
    if outcome.merged_dir is not None:
        console.print(f"Merged model (safetensors): {outcome.merged_dir}")
    registration = outcome.registration
    if registration is not None and registration.merged_gguf is not None:
        console.print(f"Merged GGUF: {registration.merged_gguf}")
    if registration is not None and registration.ok:
        console.print(f"Registered with Ollama: {registration.name} (try `ollama run {registration.name}`)")
    elif registration is not None:
        console.print(f"[yellow]Not registered[/]: {registration.error}")
        console.print(f"Register it later with: {registration.command}")
    else:
        console.print(f"Next: register it with `cd {outcome.out_dir} && ollama create NAME -f Modelfile`")
        console.print(
            f"  or benchmark it again with `benchsel run --lora {outcome.adapter_gguf} "
            f"--models {outcome.base_name}`"
        )
    evaluation = outcome.evaluation
    if evaluation is None:
        return
    from benchsel.cli.render import results_table

    before, after = evaluation.before, evaluation.after
    console.print(results_table(list(before.models), title=f"Base: run {before.run.id}"))
    console.print(results_table(list(after.models), title=f"Fine-tune: run {after.run.id}"))
    for path in evaluation.written:
        console.print(f"Wrote {path}")


# ---- data ---------------------------------------------------------------------------------------


@train.group()
def data() -> None:
    """Build and check training data."""


@data.command("generate")
@click.option("--n", type=int, default=600, show_default=True, help="How many examples.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed: the same seed, the same data."
)
@click.option("--evalset", default=defaults.EVALSET, show_default=True, help="Whose prompt the examples use.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("train.jsonl"),
    show_default=True,
    help="JSONL file to write.",
)
def generate(n: int, seed: int, evalset: str, out: Path) -> None:
    """Write synthetic extraction examples (exact gold by construction) as chat-messages JSONL. An
    imported eval set with its own closed label list is refused: synthetic data uses other labels.

    \b
    Examples:
      benchsel train data generate --n 600 --out train.jsonl
      benchsel train data generate --n 50 --seed 3 --evalset extraction-v1-full --out small.jsonl
    """
    from benchsel.evalset import load_evalset
    from benchsel.train.data import write_jsonl
    from benchsel.train.pipeline import synthetic_examples

    examples = synthetic_examples(n, seed, load_evalset(evalset))
    path = write_jsonl(examples, out)
    click.echo(f"Wrote {len(examples)} examples to {path}")


@data.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--evalset", default=defaults.EVALSET, show_default=True, help="Leakage check against it.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option("--drop-leaks", is_flag=True, help="Report leaked examples as dropped instead of failing.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
def check(file: Path, evalset: str, fmt: str, drop_leaks: bool, seed: int) -> None:
    """Check training data: schema-valid targets, duplicates, leakage into the eval set, the split.

    \b
    Examples:
      benchsel train data check train.jsonl
      benchsel train data check mine.jsonl --format sharegpt --evalset evalsets/conll04 --drop-leaks
    """
    from benchsel.evalset import load_evalset
    from benchsel.train.data import load_examples, prepare

    loaded = load_evalset(evalset)
    examples = load_examples(file, fmt, loaded.prompt)  # type: ignore[arg-type]
    prepared = prepare(examples, schema=loaded.schema, evalset=loaded, drop_leaks=drop_leaks, seed=seed)
    for line in prepared.report.lines():
        click.echo(line)
