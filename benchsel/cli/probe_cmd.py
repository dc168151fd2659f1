"""`benchsel probe RUN_ID`: measure trainability (few-shot or a pilot LoRA) on a probe split of the run,
store it with the run, and show the ranking `benchsel select` will add as its third."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from benchsel.cli.options import bytes_option, db_option, ray_option

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from benchsel.probe import MeasuredRanking


@click.command()
@click.argument("run_id")
@click.option(
    "--method", type=click.Choice(["fewshot", "lora"]), required=True, help="Few-shot prompt or pilot LoRA."
)
@click.option("--top", type=int, help="Probe only the top K of trainable potential [every candidate].")
@click.option("--models", help="Probe these models of the run (comma-separated) instead of the top K.")
@click.option("--steps", type=int, default=20, show_default=True, help="Pilot LoRA optimizer steps.")
@click.option("--split", "split_text", default="probe=0.5", show_default=True, help="Share of cases probed.")
@click.option(
    "--shots", type=int, default=3, show_default=True, help="Worked examples for the few-shot probe."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, data and training.")
@click.option("--batch", type=int, help="Pilot LoRA per-device batch size [4].")
@click.option("--grad-accum", type=int, help="Pilot LoRA gradient accumulation steps [4].")
@click.option("--max-seq-len", type=int, help="Pilot LoRA longest example in tokens [2048].")
@click.option("--threads", type=int, help="llama-server threads for the pilot LoRA's benchmark.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="[reports/probes/RUN_ID]")
@ray_option("Train each pilot LoRA and run each benchmark as a Ray task; adapters come back here as bytes")
@click.option("--ray-gpus", type=float, default=0.0, show_default=True, help="GPUs each Ray task needs.")
@click.option(
    "--ray-memory",
    metavar="SIZE",
    help="Memory a pilot LoRA's Ray task asks for, e.g. 12GiB; 0: none [the training estimate].",
)
@db_option
def probe(
    run_id: str,
    method: str,
    top: int | None,
    models: str | None,
    steps: int,
    split_text: str,
    shots: int,
    seed: int,
    batch: int | None,
    grad_accum: int | None,
    max_seq_len: int | None,
    threads: int | None,
    out: Path | None,
    ray: str | None,
    ray_gpus: float,
    ray_memory: str | None,
    db: Path | None,
) -> None:
    """Measure how much each candidate of RUN_ID gains from k worked examples (--method fewshot) or a
    short LoRA identical for all (--method lora), on a probe split of the run's cases that the final
    verdict never uses. `benchsel select RUN_ID` then shows it as the ranking "measured trainability".

    With --ray each pilot LoRA trains as a Ray task on a node with --ray-gpus GPUs and the memory its
    training needs, and its adapter comes back to this machine (under --out); every benchmark of the
    probe runs as `benchsel run --ray` runs it. Replies, losses, scores, training time and peak memory
    are stored here, as a local probe stores them.

    \b
    Examples:
      benchsel probe RUN_ID --method fewshot --shots 3
      benchsel probe RUN_ID --method lora --top 3 --steps 20 --split probe=0.5
      benchsel probe RUN_ID --method lora --ray 10.0.0.5:6379 --ray-gpus 1
    """
    from benchsel.api import parse_models
    from benchsel.probe import ProbePlan, measured_ranking, parse_split
    from benchsel.probe import probe as run_probe

    overrides = {"per_device_batch_size": batch, "gradient_accumulation_steps": grad_accum}
    overrides["max_seq_len"] = max_seq_len
    plan = ProbePlan(
        run_id=run_id,
        method=method,  # type: ignore[arg-type]
        top=top,
        steps=steps,
        shots=shots,
        fraction=parse_split(split_text),
        seed=seed,
        settings={key: value for key, value in overrides.items() if value is not None},
        db=db,
        out_dir=out,
        threads=threads,
        models=parse_models(models) if models else None,
        ray=ray,
        ray_gpus=ray_gpus,
        ray_memory_bytes=bytes_option("--ray-memory", ray_memory),
    )
    console = _console()
    outcome = run_probe(plan, on_stage=lambda text: console.print(text, soft_wrap=True))
    render_measured(measured_ranking(outcome.probe), console)
    console.print(
        f"Stored probe {outcome.probe.id} with run {outcome.probe.run_id}: "
        f"{len(outcome.split.probe)} probe cases, {len(outcome.split.test)} left for the verdict. "
        f"`benchsel select {outcome.probe.run_id}` ranks it beside the predictions.",
        soft_wrap=True,
    )


def _console() -> Console:
    from benchsel.cli.render import console

    return console()


def measured_table(ranking: MeasuredRanking) -> Table:
    from rich.table import Table

    table = Table(title="Measured trainability", title_justify="left", header_style="bold")
    headers = ("#", "Model", "After probe", "Gain (paired)", "Zero-shot", "Predicted", "Seconds")
    for header in headers:
        table.add_column(header, justify="left" if header == "Model" else "right")
    for e in ranking.entries:
        f = e.figures
        table.add_row(
            str(e.rank) if e.rank else "-",
            e.model,
            f"{f.probed.estimate()}" if f.probed else "failed",
            f"{f.gain.estimate():+.2f}" if f.gain else "-",
            f"{f.zero_shot.value:.2f}" if f.zero_shot else "-",
            "-" if e.predicted is None else f"{e.predicted:.3f}",
            f"{f.seconds:.0f}",
        )
    return table


def render_measured(ranking: MeasuredRanking, console: Console) -> None:
    """The third ranking: the table, the winner and each model's reason."""
    console.print(measured_table(ranking))
    console.print(
        f"Measured trainability ({ranking.description}, probe {ranking.probe_id}): as-is entity F1 on "
        f"{len(ranking.split.get('probe', []))} probe cases; Predicted is the trainable-potential score.",
        soft_wrap=True,
    )
    winner = ranking.winner
    if winner is None:
        console.print("Measured: no model was probed successfully", soft_wrap=True)
    else:
        console.print(f"Measured: {winner.model} - {winner.reason}", soft_wrap=True)
    for entry in ranking.entries:
        if entry.excluded:
            console.print(f"  {entry.model}: {entry.reason}", soft_wrap=True)
