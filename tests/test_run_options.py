"""`benchsel run`: options from a TOML file (--config), llama.cpp's -c/--ctx-size/-n, and the
response format's new name with the old one still working. The engine is not started: api.run is
replaced by a recorder, as these tests are about the command line only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from benchsel import api
from benchsel.cli.main import cli
from benchsel.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def record(models: str, **kwargs: Any) -> None:
        seen.append({"models": models, **kwargs})
        raise UsageError("recorded")  # stop before anything runs

    monkeypatch.setattr(api, "run", record)
    return seen


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["run", *args])


def test_llama_cpp_aliases_and_response_format(calls: list[dict[str, Any]]) -> None:
    for args in (["-c", "2048", "-n", "64"], ["--ctx-size", "2048", "--num-predict", "64"]):
        assert invoke("--models", "smollm2:135m", *args).exit_code == 2
        assert (calls[-1]["num_ctx"], calls[-1]["num_predict"]) == (2048, 64)
    invoke("--models", "m", "--response-format", "schema")
    assert calls[-1]["format"] == "schema"
    invoke("--models", "m", "--format", "json")  # the old spelling still works
    assert calls[-1]["format"] == "json"


def test_help_shows_the_new_names_only() -> None:
    text = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output
    assert "--response-format" in text and "--format " not in text
    assert "-c, --num-ctx, --ctx-size" in text and "-n, --num-predict" in text
    assert "--config" in text


def test_config_file_gives_every_option_and_the_command_line_wins(
    calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'models = ["smollm2:135m", "gemma3:270m"]\nbackend = "llamacpp"\nnum-ctx = 2048\n'
        'num_predict = 128\nlimit = 3\nfresh = true\nresponse-format = "json"\n'
    )
    result = invoke("--config", str(config), "--limit", "1")
    assert result.exit_code == 2, result.output
    call = calls[-1]
    assert call["models"] == "smollm2:135m,gemma3:270m"
    assert (call["backend"], call["num_ctx"], call["num_predict"]) == ("llamacpp", 2048, 128)
    assert (call["limit"], call["fresh"], call["format"]) == (1, True, "json")


def test_the_documented_example_file_loads(calls: list[dict[str, Any]]) -> None:
    result = invoke("--config", str(ROOT / "docs" / "run.example.toml"))
    assert result.exit_code == 2 and "recorded" in result.output
    assert calls[-1]["models"] == "smollm2:135m,gemma3:270m"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("num_ctxx = 2048\n", "unknown key 'num_ctxx' - did you mean 'num_ctx'?"),
        ("[run]\nmodel = 'x'\n", "unknown key 'model' - did you mean 'models'?"),
        ("num-ctx = 1\nnum_ctx = 2\n", "'num_ctx' is given twice"),
        ("limit = [1, 2]\n", "'limit' must be a single value"),
        ("models = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_one_line_exit_2(
    calls: list[dict[str, Any]], tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(text)
    result = invoke("--config", str(config))
    assert result.exit_code == 2
    assert message in result.output and str(config) in result.output
    assert calls == []


def test_a_missing_config_file(calls: list[dict[str, Any]], tmp_path: Path) -> None:
    result = invoke("--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "no such file" in result.output


COMMANDS_WITH_EXAMPLES = [
    ["run"],
    ["select"],
    ["report"],
    ["compare"],
    ["runs"],
    ["models"],
    ["evalset", "validate"],
    ["evalset", "stats"],
    ["evalset", "list"],
    ["evalset", "import"],
    ["train", "data", "generate"],
    ["train", "data", "check"],
]


@pytest.mark.parametrize("command", COMMANDS_WITH_EXAMPLES, ids=" ".join)
def test_help_has_examples(command: list[str]) -> None:
    text = CliRunner().invoke(cli, [*command, "--help"], terminal_width=120).output
    assert "Example" in text
    example_lines = [line.strip() for line in text.splitlines() if line.strip().startswith("benchsel ")]
    assert example_lines and all(line.startswith(f"benchsel {command[0]}") for line in example_lines)


@pytest.mark.parametrize("command", ["select", "models", "report"])
def test_ctx_size_alias_wherever_num_ctx_exists(command: str) -> None:
    text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
    assert "-c, --num-ctx, --ctx-size" in text
