"""The `benchsel` command group. Subcommands load lazily so `benchsel --help` stays instant."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import click

from benchsel import __version__
from benchsel.errors import BenchselError, file_error

# name -> (module, attribute, one-line help). Help text lives here so --help imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("benchsel.cli.run_cmd", "run", "Benchmark models on an eval set and store every reply."),
    "runs": ("benchsel.cli.run_cmd", "runs", "List stored runs."),
    "score": ("benchsel.cli.score_cmd", "score", "Score predictions made elsewhere against an eval set."),
    "evalset": ("benchsel.cli.evalset_cmd", "evalset", "Validate, inspect, list and import eval sets."),
    "report": ("benchsel.cli.report_cmd", "report", "Write report.md and a self-contained report.html."),
    "compare": ("benchsel.cli.report_cmd", "compare", "Compare two runs on the same eval set."),
    "select": ("benchsel.cli.select_cmd", "select", "Rank a run's models for training and deploying now."),
    "models": ("benchsel.cli.select_cmd", "models", "List the models a backend serves, with estimated VRAM."),
    "probe": ("benchsel.cli.probe_cmd", "probe", "Measure trainability: few-shot or a pilot LoRA per model."),
    "train": ("benchsel.cli.train_cmd", "train", "LoRA-train the chosen base, register it, measure again."),
}


class CommandFailed(click.ClickException):
    """A benchsel error shown as one "Error: ..." line with the error's exit code (2 for usage)."""

    def __init__(self, error: BenchselError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self.error.exit_code


class LazyGroup(click.Group):
    """Loads each command on first use, and is the one place where benchsel's typed errors become
    click errors (for `benchsel ...` and for click's CliRunner alike)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BenchselError as exc:
            raise CommandFailed(exc) from None
        except OSError as exc:  # a file-system fault no command caught: one line, never a traceback
            raise CommandFailed(file_error(exc)) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        command: click.Command = getattr(import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="benchsel")
def cli() -> None:
    """Pick the small local model to fine-tune for structured extraction, train it, and measure
    what the training bought.

    \b
    Typical session:
      benchsel run --models gemma3:4b,gemma4:e2b     # benchmark candidates
      benchsel select RUN_ID --vram 8GiB --reserve 3GiB
      benchsel report RUN_ID
      benchsel train --from-selection reports/RUN_ID/selection.json --evaluate
    """


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="benchsel", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BenchselError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
