"""Option machinery the commands share: the options several commands take (one definition, one help
text), numeric bounds, old spellings kept but not shown, and a TOML file of options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import click

from benchsel import defaults

_Command = TypeVar("_Command", bound=Callable[..., Any])

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run store (default: $BENCHSEL_DB or reports/benchsel.sqlite).",
)
"""The run store option every command that reads or writes runs shares."""

report_dir_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.OUT_DIR,
    show_default=True,
    help="Report directory.",
)
"""Where a run's reports (and selection.json) go: run, select, report and compare."""

other_evalset_option = click.option("--evalset", help="Score against this eval set instead of the run's own.")
"""select and report: rescore a stored run against another eval set."""


@overload
def backend_options(command: _Command, *, several_hosts: bool = False) -> _Command: ...
@overload
def backend_options(
    command: None = None, *, several_hosts: bool = False
) -> Callable[[_Command], _Command]: ...
def backend_options(
    command: _Command | None = None, *, several_hosts: bool = False
) -> _Command | Callable[[_Command], _Command]:
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


if TYPE_CHECKING:
    _NumberOrWord = click.ParamType[int | float | str]
else:
    _NumberOrWord = click.ParamType  # generic from click 8.4 on; 8.1 is still supported


class Bounded(_NumberOrWord):
    """A numeric option checked against benchsel.bounds: out of range is one "Error: ..." line
    (a benchsel UsageError, exit 2), the same line the library call gives."""

    def __init__(self, key: str, words: tuple[str, ...] = ()) -> None:
        from benchsel.bounds import RUN_BOUNDS

        self.bound = RUN_BOUNDS[key]
        self.words = words  # values taken as they are, such as -j auto
        self.name = "integer" if self.bound.integer else "float"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | float | str:
        from benchsel.errors import UsageError

        number: int | float
        if isinstance(value, str):
            if value.strip().lower() in self.words:
                return value.strip().lower()
            try:
                number = int(value) if self.bound.integer else float(value)
            except ValueError:
                also = "".join(f" or '{word}'" for word in self.words)
                raise UsageError(
                    f"{self.bound.option} {value!r}: must be {self.bound.describe()}{also}"
                ) from None
        else:
            number = value  # a default or a Python caller's value: already a number
        self.bound.check(number)
        return number


class HiddenAliasOption(click.Option):
    """An option whose ``hidden_aliases`` still work but are left out of --help (old spellings)."""

    def __init__(self, *args: Any, hidden_aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = frozenset(hidden_aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = [opt for opt in self.opts if opt not in self.hidden_aliases]
        opts, self.opts = self.opts, shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def _config_keys(command: click.Command) -> dict[str, str]:
    """Every spelling a config file may use for each option: num_ctx, num-ctx, ctx-size ..."""
    keys: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None or param.name == "config":
            continue
        keys[param.name] = param.name
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = param.name
                keys[opt[2:].replace("-", "_")] = param.name
    return keys


def _load_config(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return value
    from benchsel.runconfig import load_run_config

    assert ctx.command is not None
    values = load_run_config(value, _config_keys(ctx.command), frozenset({"models"}))
    # defaults from the file: whatever the command line gives still wins
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


def config_option(command: _Command) -> _Command:
    """--config FILE: the command's options from a TOML file (eager, so the file is read first)."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML file with any of these options as keys (docs/run-config.md); the command line wins.",
    )(command)
