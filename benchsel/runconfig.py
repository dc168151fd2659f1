"""A run described in a TOML file (`benchsel run --config run.toml`): every command-line option of
`run` is a key, spelled as the option (``num-ctx``) or as its parameter (``num_ctx``), at the top level
or under a ``[run]`` table. A key that is no option is an error that names it; the command line wins
over the file. docs/run-config.md has an example."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchsel.errors import UsageError


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file - give a TOML run description, see docs/run-config.md"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc}) - give a UTF-8 TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    if set(data) == {"run"} and isinstance(data["run"], dict):
        return data["run"]
    return data


def load_run_config(
    path: str | Path, keys: Mapping[str, str], lists: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The values of a run description, by parameter name.

    ``keys`` maps each accepted spelling to its parameter name; a parameter in ``lists`` (such as
    ``models``) may be a TOML list, joined with commas as the option takes it."""
    path = Path(path)
    values: dict[str, Any] = {}
    for key, value in _read(path).items():
        name = keys.get(key)
        if name is None:
            spellings = sorted({k for k in keys if "_" not in k})
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"{path}: unknown key '{key}' - {hint}valid keys: {', '.join(spellings)}")
        if name in values:
            raise UsageError(f"{path}: '{key}' is given twice (under two spellings) - keep one")
        if isinstance(value, list) and name in lists:
            value = ",".join(str(v) for v in value)
        if isinstance(value, dict | list):
            raise UsageError(f"{path}: '{key}' must be a single value, not a {type(value).__name__}")
        values[name] = value
    return values
