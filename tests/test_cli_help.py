"""`benchsel --help` and the subcommands' help stay instant: no heavy import, the verbs listed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "matplotlib", "torch", "jinja2", "transformers")
ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
from benchsel.cli.main import main
try:
    main({args!r})
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("MODULES=" + repr(sorted(sys.modules)))
"""


def _help(args: list[str]) -> tuple[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    text, _, modules = done.stdout.rpartition("MODULES=")
    return text, ast.literal_eval(modules.strip())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["Usage: benchsel [OPTIONS] COMMAND [ARGS]...", "evalset", "run", "score"]),
        (["evalset", "--help"], ["Usage: benchsel evalset", "validate", "stats", "list", "import"]),
        (["run", "--help"], ["Usage: benchsel run", "--models"]),
        (["score", "--help"], ["Usage: benchsel score", "--predictions", "--json", "--strict"]),
    ],
    ids=lambda value: (
        "-".join(value) if isinstance(value, list) and value[0].startswith("-") is False else None
    ),
)
def test_help_imports_nothing_heavy(args: list[str], expected: list[str]) -> None:
    text, modules = _help(args)
    for fragment in expected:
        assert fragment in text
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    assert heavy == []


def test_version() -> None:
    text, _ = _help(["--version"])
    assert text.strip() == "benchsel, version 0.1.0"
