"""`benchsel evalset validate|stats|list|import`: the lines a person reads, exit 2 on a bad eval set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_importers import JSONL, SPERT

from benchsel.cli.main import main
from benchsel.evalset import bundled_root


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(bundled_root() / "extraction-v1", root)
    lines = (root / "cases.jsonl").read_text().splitlines()
    (root / "cases.jsonl").write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n")
    return root


def run_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    main(["evalset", "validate", "extraction-v1"])
    out = capsys.readouterr().out
    assert out.startswith("ok: extraction-v1 v1, 24 cases, content hash ")


@pytest.mark.parametrize("command", ["validate", "stats"])
def test_bad_evalset_exits_2_with_one_line(
    broken: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    line = run_error(["evalset", command, str(broken)], capsys)
    assert line == f"Error: {broken / 'cases.jsonl'}:3: duplicate id 'v1-001' (first on line 1)"


@pytest.mark.parametrize("command", ["validate", "stats"])
def test_missing_evalset(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    line = run_error(["evalset", command, str(tmp_path / "nope")], capsys)
    assert line.startswith(f"Error: eval set '{tmp_path / 'nope'}' not found")
    (tmp_path / "empty").mkdir()
    line = run_error(["evalset", command, str(tmp_path / "empty")], capsys)
    assert (
        line
        == f"Error: {tmp_path / 'empty' / 'evalset.toml'}: missing - an eval set directory needs evalset.toml"
    )


def test_stats(capsys: pytest.CaptureFixture[str]) -> None:
    main(["evalset", "stats", "extraction-v1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "extraction-v1: 24 cases, 80 entities, 51 relationships"
    assert lines[1] == "by difficulty: simple 6, medium 7, complex 6, adversarial 5"
    assert lines[2] == "cases without relationships: 1"
    assert lines[3].startswith("text length (chars): min ")
    assert any("DEPLOYED_ON" in line for line in lines)


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    main(["evalset", "list"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    names = [row.strip("│ ").split("│")[0].strip() for row in rows]
    assert names[:2] == ["extraction-v1", "extraction-v1-full"]
    assert "│ 24 " in rows[0] and "│ 155 " in rows[1]


def test_list_with_a_broken_bundled_set(
    broken: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCHSEL_EVALSETS", str(broken.parent))
    line = run_error(["evalset", "list"], capsys)
    assert line.startswith(f"Error: {broken / 'cases.jsonl'}:3: duplicate id")


def test_import_spert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "conll04.json"
    source.write_text(json.dumps(SPERT))
    out_dir = tmp_path / "conll04"
    main(["evalset", "import", "--format", "spert", str(source), str(out_dir)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote 2 cases to {out_dir}"
    assert lines[1] == "skipped 3 records:"
    assert lines[2].startswith("  3: malformed record")
    main(["evalset", "validate", str(out_dir)])
    assert capsys.readouterr().out.startswith("ok: conll04 v1, 2 cases")


def test_import_jsonl_with_remapped_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "data.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in JSONL))
    out_dir = tmp_path / "out"
    args = ["evalset", "import", "--format", "jsonl", "--id-field", "meta.key", "--text-field", "sentence"]
    args += ["--entities-field", "mentions", "--entity-name-field", "surface", "--entity-type-field", "label"]
    args += ["--relations-field", "triples", "--head-field", "subj", "--relation-field", "pred"]
    args += ["--tail-field", "obj", str(source), str(out_dir)]
    main(args)
    out = capsys.readouterr().out
    assert out.startswith(f"wrote 2 cases to {out_dir}\nskipped 4 records:\n  r3: ")
    main(["evalset", "stats", str(out_dir)])
    assert "FOUNDED" in capsys.readouterr().out


def test_import_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = run_error(
        ["evalset", "import", "--format", "spert", str(tmp_path / "x.json"), str(tmp_path / "o")], capsys
    )
    assert line == f"Error: {tmp_path / 'x.json'}: no such file"
    with pytest.raises(SystemExit) as info:
        main(["evalset", "import", "--format", "xml", "a", "b"])
    assert info.value.code == 2


@pytest.mark.parametrize("command", ["validate", "stats"])
def test_deeply_nested_cases_are_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    root = tmp_path / "deep"
    shutil.copytree(bundled_root() / "extraction-v1", root)
    first = (root / "cases.jsonl").read_text().splitlines()[0]
    (root / "cases.jsonl").write_text(first + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    line = run_error(["evalset", command, str(root)], capsys)
    assert line == f"Error: {root / 'cases.jsonl'}:2: not valid JSON: nested too deeply"


def test_validate_lists_every_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "many"
    shutil.copytree(bundled_root() / "extraction-v1", root)
    lines = (root / "cases.jsonl").read_text().splitlines()
    bad_difficulty = json.loads(lines[2]) | {"difficulty": "hard"}
    (root / "cases.jsonl").write_text(
        "\n".join([lines[0], "{not json", lines[1], lines[0], json.dumps(bad_difficulty), *lines[3:]]) + "\n"
    )
    (root / "prompt.md").write_text("# User\n\nno placeholder here\n")
    with pytest.raises(SystemExit) as info:
        main(["evalset", "validate", str(root)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    cases = root / "cases.jsonl"
    assert err == [
        f"{root / 'prompt.md'}: the '# User' section must contain {{text}} where the case text goes",
        f"{cases}:2: not valid JSON: Expecting property name enclosed in double quotes",
        f"{cases}:4: duplicate id 'v1-001' (first on line 1)",
        f"{cases}:5: difficulty: unknown difficulty 'hard', use one of simple, medium, complex, adversarial",
        f"Error: {root}: 4 problems - fix each line above",
    ]

    with pytest.raises(SystemExit):
        main(["evalset", "validate", str(root), "--max-problems", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 3
        and err[-1] == f"Error: {root}: 4 problems (the first 2 are listed) - fix each line above"
    )


def test_a_byte_order_mark_is_ignored_in_every_eval_set_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bom"
    shutil.copytree(bundled_root() / "extraction-v1", root)
    for name in ("evalset.toml", "cases.jsonl", "schema.json", "prompt.md"):
        (root / name).write_bytes(b"\xef\xbb\xbf" + (root / name).read_bytes())
    main(["evalset", "validate", str(root)])
    assert capsys.readouterr().out.startswith("ok: extraction-v1 v1, 24 cases, content hash ")
    from benchsel.evalset import load_evalset, validate_evalset

    assert validate_evalset(root).content_hash == load_evalset(root).content_hash
