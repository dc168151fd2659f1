"""benchsel.defaults: one cache variable (the old name a deprecated alias) and defaults the options show."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from benchsel import defaults
from benchsel.cli.main import cli


def test_cache_dir_reads_the_one_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BENCHSEL_CACHE", raising=False)
    monkeypatch.setenv("BENCHSEL_CACHE_DIR", str(tmp_path / "new"))
    assert defaults.cache_dir() == tmp_path / "new"
    monkeypatch.setenv("BENCHSEL_CACHE", str(tmp_path / "old"))
    assert defaults.cache_dir() == tmp_path / "new"  # the new name wins, no warning


def test_the_old_variable_is_a_deprecated_alias(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BENCHSEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("BENCHSEL_CACHE", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="set BENCHSEL_CACHE_DIR instead"):
        assert defaults.cache_dir() == tmp_path / "old"
    monkeypatch.delenv("BENCHSEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert defaults.cache_dir() == tmp_path / "xdg" / "benchsel"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert defaults.cache_dir() == tmp_path / ".cache" / "benchsel"


@pytest.mark.parametrize(("command", "shown"), [("select", "default: 4096"), ("report", "default: reports")])
def test_help_shows_the_defaults(command: str, shown: str) -> None:
    assert defaults.NUM_CTX == 4096 and str(defaults.OUT_DIR) == "reports"
    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert shown in result.output
