"""`benchsel score`: predictions made elsewhere, raw text or objects, table and JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchsel.cli.main import main
from benchsel.evalset import load_evalset


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def gold(case_id: str) -> dict[str, Any]:
    return load_evalset("extraction-v1").case(case_id).gold.model_dump(exclude_none=True)


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def run_ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    main(args)
    return capsys.readouterr().out


def run_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _cells(lines: list[str], prefix: str) -> list[str]:
    line = next(line for line in lines if line.startswith(prefix))
    return [cell.strip() for cell in line.strip("│┃ ").replace("┃", "│").split("│")]


def test_score_raw_text_and_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = write(
        tmp_path / "p.jsonl",
        [
            {"id": "v1-001", "output": json.dumps(gold("v1-001"))},  # raw text, valid
            {"id": "v1-002", "output": gold("v1-002")},  # an object
            {"id": "v1-003", "output": "```json\n" + json.dumps(gold("v1-003")) + "\n```"},  # fenced
            {"id": "v1-004", "output": "I cannot help with that."},
        ],
    )
    out_json = tmp_path / "m.json"
    args = ["score", "--evalset", "extraction-v1", "--predictions", str(predictions), "--json", str(out_json)]
    out = run_ok([*args, "--name", "mymodel"], capsys)
    lines = out.splitlines()
    assert lines[0].startswith(f"extraction-v1: {predictions}")
    table = dict(zip(_cells(lines, "┃ Model"), _cells(lines, "│ mymodel"), strict=True))
    assert table["Model"] == "mymodel"
    assert table["Valid JSON"] == "50%"  # 2 of 4 replies are valid JSON
    assert table["Schema"] == "50%"
    assert table["Entity F1"].startswith("0.71")  # as-is: 2*5 / (2*5 + 0 + 4)
    assert "note 20 cases of extraction-v1 have no prediction (not scored)" in out
    assert f"metrics: {out_json}" in out

    metrics = json.loads(out_json.read_text())
    assert metrics["replies"] == 4 and metrics["errors"] == 0
    assert metrics["valid_json"]["value"] == 0.5
    assert metrics["recovered"]["value"] == 0.75
    # gold entities: 3 + 2 + 2 + 2; as-is finds the first two cases' 5, content also the fenced 2
    assert metrics["as_is"]["entities"]["tp"] == 5 and metrics["as_is"]["entities"]["fn"] == 4
    assert metrics["content"]["entities"]["tp"] == 7 and metrics["content"]["entities"]["fn"] == 2
    assert metrics["format_debt"]["entity_f1"] == pytest.approx(
        metrics["content"]["entities"]["f1"]["value"] - metrics["as_is"]["entities"]["f1"]["value"]
    )
    for view in ("as_is", "content"):
        for part in ("entities", "relationships"):
            block = metrics[view][part]
            assert block["f1"]["low"] <= block["f1"]["value"] <= block["f1"]["high"]
            assert set(block) == {"precision", "recall", "f1", "tp", "fp", "fn"}
        assert 0 <= metrics[view]["relationship_macro_f1"] <= 1
    rows = {row["id"]: row for row in metrics["cases"]}
    assert list(rows) == ["v1-001", "v1-002", "v1-003", "v1-004"]
    assert rows["v1-003"]["recovery"] == "fence" and rows["v1-003"]["strict_json"] is False
    assert rows["v1-004"]["recovered"] is False
    assert rows["v1-002"]["as_is_relationships"]["fn"] == 0
    assert set(metrics["by_difficulty"]) == {"simple"}


def test_score_is_seeded_and_strict_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answer = gold("v1-002")
    answer["entities"][0]["type"] = "wrong"
    predictions = write(
        tmp_path / "p.jsonl", [{"id": "v1-002", "output": answer}, {"id": "v1-001", "output": ""}]
    )
    outputs = []
    for name, extra in (("a", []), ("b", []), ("c", ["--strict"])):
        target = tmp_path / f"{name}.json"
        run_ok(
            ["score", "-e", "extraction-v1", "-p", str(predictions), "--json", str(target), *extra], capsys
        )
        outputs.append(json.loads(target.read_text()))
    assert outputs[0] == outputs[1]
    assert outputs[0]["content"]["entities"]["tp"] == 2
    assert outputs[2]["content"]["entities"]["tp"] == 1


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            ["not json"],
            ':1: not a JSON object - each line must be {"id": ..., "output": ...} (optionally "repeat": N)',
        ),
        (
            [{"id": "v1-001", "output": "x"}, {"output": "x"}],
            ':2: each line must be {"id": ..., "output": ...} (optionally "repeat": N)',
        ),
        ([[1, 2]], ':1: each line must be {"id": ..., "output": ...} (optionally "repeat": N)'),
        ([{"id": "nope", "output": "x"}], ":1: id 'nope' is not a case of the eval set"),
        ([""], ": holds no predictions"),
        (
            ['{"id": "v1-001", "output": ' + "[" * 100_000],
            ':1: not a JSON object - each line must be {"id": ..., "output": ...} (optionally "repeat": N)',
        ),
    ],
    ids=["not-json", "no-id", "not-object", "unknown-id", "empty", "deep-nesting"],
)
def test_bad_predictions_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: list[Any], expected: str
) -> None:
    predictions = write(tmp_path / "p.jsonl", rows)
    line = run_error(["score", "-e", "extraction-v1", "-p", str(predictions)], capsys)
    assert line == f"Error: {predictions}{expected}"


def test_json_into_a_new_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = write(tmp_path / "p.jsonl", [{"id": "v1-001", "output": gold("v1-001")}])
    target = tmp_path / "new" / "dir" / "m.json"
    run_ok(["score", "-e", "extraction-v1", "-p", str(predictions), "--json", str(target)], capsys)
    assert json.loads(target.read_text())["valid_json"]["value"] == 1.0


def test_missing_predictions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    line = run_error(["score", "-e", "extraction-v1", "-p", str(missing)], capsys)
    assert line == f"Error: {missing}: no such file - give the JSONL file of predictions"


def test_unknown_evalset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions = write(tmp_path / "p.jsonl", [{"id": "v1-001", "output": "x"}])
    line = run_error(["score", "-e", "no-such-set", "-p", str(predictions)], capsys)
    assert line.startswith("Error: eval set 'no-such-set' not found")


def test_missing_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["score", "-e", "extraction-v1"])
    assert info.value.code == 2
    assert "Missing option '--predictions'" in capsys.readouterr().err
