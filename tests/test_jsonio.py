"""benchsel.jsonio: the one JSON/JSONL reader (UTF-8 with a BOM allowed, errors naming file:line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchsel import jsonio
from benchsel.errors import EvalSetError, UsageError


def test_jsonl_and_array_give_the_same_records_with_where(tmp_path: Path) -> None:
    lines = tmp_path / "r.jsonl"
    lines.write_bytes(jsonio.BOM + b'{"a": 1}\n\n{"a": "\xe2\x80\xa8"}\n')
    array = tmp_path / "r.json"
    array.write_bytes(jsonio.BOM + b'[{"a": 1}, {"a": "\xe2\x80\xa8"}]')
    from_lines = list(jsonio.read_records(lines, missing=""))
    from_array = list(jsonio.read_records(array, missing=""))
    assert [w for w, _ in from_lines] == [f"{lines}:1", f"{lines}:3"]
    assert [w for w, _ in from_array] == [f"{array}[0]", f"{array}[1]"]
    assert [r for _, r in from_lines] == [r for _, r in from_array] == [{"a": 1}, {"a": "\u2028"}]


def test_each_problem_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "\xff"}\n')
    with pytest.raises(UsageError, match=r"bad\.jsonl:2: not UTF-8 \(byte 7\) - save it as UTF-8"):
        list(jsonio.read_records(path, missing=""))
    path.write_text('{"a": 1}\n[1]\n')
    with pytest.raises(UsageError, match=r"bad\.jsonl:2: expected a list of objects .* got list"):
        list(jsonio.read_records(path, missing=""))
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(UsageError, match=r"bad\.jsonl:2: not valid JSON: .* not JSON or JSONL"):
        list(jsonio.read_records(path, missing=""))
    with pytest.raises(UsageError, match=r"nope\.jsonl: no such file - give one$"):
        list(jsonio.read_records(tmp_path / "nope.jsonl", missing="give one"))


def test_the_caller_chooses_the_error_type() -> None:
    with pytest.raises(EvalSetError, match=r"^x:3: not valid JSON: nested too deeply$"):
        jsonio.loads("[" * 100_000, "x:3", EvalSetError)


def test_file_lines_caps_a_line(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(b"{}\n" + b" " * 2048 + b"\n")
    lines = jsonio.file_lines(path, missing="", max_line_bytes=1024 * 1024, line_is="one record")
    assert list(lines) == [(1, "{}\n")]
    with pytest.raises(UsageError, match=r"long\.jsonl:2: line longer than 0 MiB - each line must be one x"):
        list(jsonio.file_lines(path, missing="", max_line_bytes=1024, line_is="one x"))
