"""Option machinery the commands share: old spellings kept but not shown, and a TOML file of options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from benchsel.errors import UsageError


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


def config_option(command: Any) -> Any:
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
