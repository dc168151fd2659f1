"""Option machinery the commands share: the options several commands take (one definition, one help
text), numeric bounds, the hardware constraints and weights, old spellings kept but not shown, and a
TOML file of options."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import click

from benchsel import defaults
from benchsel.errors import UsageError

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


# ---- the hardware constraints and weights `select` and `report` take


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


def num_ctx_option(what: str) -> Callable[[_Command], _Command]:
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


def ray_option(what: str) -> Callable[[_Command], _Command]:
    """--ray [ADDRESS]: a flag with an optional value; ``what`` says what runs as Ray tasks."""
    return click.option(
        "--ray",
        is_flag=False,
        flag_value="auto",
        default=None,
        metavar="[ADDRESS]",
        help=f"{what} (default: the cluster this machine joined; 'local': a new one).",
    )


def constraint_options(vram_help: str) -> Callable[[_Command], _Command]:
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

    def decorate(command: _Command) -> _Command:
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


# ---- old spellings and a file of options


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


def bytes_option(option: str, value: str | None) -> int | None:
    """A size option in bytes; a bad one is an error that names the option and shows the units."""
    from benchsel.hardware import parse_bytes

    if value is None:
        return None
    try:
        return parse_bytes(value)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None
