"""`benchsel train` and `benchsel train data` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from benchsel.cli.main import cli
from benchsel.evalset import load_evalset
from benchsel.train import pipeline


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "120"})


def test_data_generate_writes_chat_records(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    result = invoke("train", "data", "generate", "--n", "12", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote 12 examples to {out}"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12
    assert [m["role"] for m in records[0]["messages"]][-1] == "assistant"
    assert set(json.loads(records[0]["messages"][-1]["content"])) == {"entities", "relationships"}


def test_data_check_refuses_a_leak_and_names_the_fix(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    assert invoke("train", "data", "generate", "--n", "10", "--out", str(out)).exit_code == 0
    case = load_evalset("extraction-v1").cases[0]
    leaked = {"id": "leak-1", "text": case.text, "gold": case.gold.model_dump(exclude_none=True)}
    prompt = load_evalset("extraction-v1").prompt
    messages = [*prompt.messages(case.text), {"role": "assistant", "content": json.dumps(leaked["gold"])}]
    with out.open("a") as handle:
        handle.write(json.dumps({"id": "leak-1", "messages": messages, "text": case.text}) + "\n")

    refused = invoke("train", "data", "check", str(out), "--evalset", "extraction-v1")
    assert refused.exit_code == 2
    assert f"leak-1 (eval case {case.id})" in refused.output
    assert "--drop-leaks" in refused.output

    dropped = invoke("train", "data", "check", str(out), "--evalset", "extraction-v1", "--drop-leaks")
    assert dropped.exit_code == 0, dropped.output
    assert dropped.output.splitlines()[0] == "kept 10 of 11: 1 leaked into extraction-v1 (dropped)"


def test_missing_training_extra_says_which_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "_module_available", lambda name: name not in {"peft", "trl"})
    result = invoke("train", "--base", "smollm2:135m")
    assert result.exit_code == 2
    assert "benchsel train (peft, trl not installed) needs the 'train' extra" in result.output
    assert "pip install 'benchsel[train]'" in result.output


def test_train_without_a_base_is_a_usage_error() -> None:
    result = invoke("train", "--evaluate")
    assert result.exit_code == 2
    assert "--base TAG|DIR|FILE or --from-selection" in result.output


def test_a_bad_setting_flag_names_the_flag() -> None:
    result = invoke("train", "--base", "smollm2:135m", "--r", "0")
    assert result.exit_code == 2
    assert "--r: Input should be greater than or equal to 1" in result.output
