"""benchsel.scoring.predictions: a predictions file read line by line, bounded, with clear errors."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pytest

from benchsel.errors import UsageError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.scoring import predictions, score_predictions
from benchsel.scoring.predictions import iter_predictions, load_predictions


@pytest.fixture(scope="module")
def v1() -> EvalSet:
    return load_evalset("extraction-v1")


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def answer(evalset: EvalSet, case_id: str) -> str:
    return json.dumps(evalset.case(case_id).gold.model_dump(exclude_none=True))


def test_an_endless_input_is_an_error_not_a_memory_blow_up() -> None:
    with pytest.raises(UsageError) as info:
        load_predictions("/dev/zero")
    assert str(info.value) == (
        '/dev/zero:1: line longer than 32 MiB - each line must be one prediction, {"id": ..., "output": ...} '
        '(optionally "repeat": N); is this a JSONL file?'
    )


def test_a_line_over_the_limit_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictions, "MAX_LINE_BYTES", 1024 * 1024)
    path = write(
        tmp_path / "p.jsonl", [{"id": "v1-001", "output": "x"}, {"id": "v1-002", "output": "y" * 2**20}]
    )
    with pytest.raises(UsageError, match=re.escape(f"{path}:2: line longer than 1 MiB")):
        load_predictions(path)


def test_a_repeated_id_is_an_error_unless_the_file_says_repeat(tmp_path: Path) -> None:
    dup = write(tmp_path / "dup.jsonl", [{"id": "v1-001", "output": "a"}, {"id": "v1-001", "output": "b"}])
    with pytest.raises(UsageError) as info:
        load_predictions(dup)
    assert str(info.value) == (
        f"{dup}:2: id 'v1-001' appears again (first on line 1) - remove the duplicate, or mark each answer "
        'to the same case with "repeat": 0, 1, ...'
    )
    rows = [{"id": "v1-001", "output": "a", "repeat": 0}, {"id": "v1-001", "output": "b", "repeat": 1}]
    repeats = load_predictions(write(tmp_path / "rep.jsonl", rows))
    assert [(r.case_id, r.repeat, r.output) for r in repeats] == [("v1-001", 0, "a"), ("v1-001", 1, "b")]
    twice = write(tmp_path / "twice.jsonl", [*rows, {"id": "v1-001", "output": "c", "repeat": 1}])
    with pytest.raises(UsageError, match=r":3: id 'v1-001' with repeat 1 appears again \(first on line 2\)"):
        load_predictions(twice)
    with pytest.raises(UsageError, match=r'"repeat" must be a whole number from 0 \(got -1\)'):
        load_predictions(write(tmp_path / "neg.jsonl", [{"id": "v1-001", "output": "a", "repeat": -1}]))


def test_a_byte_order_mark_is_ignored(tmp_path: Path, v1: EvalSet) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "v1-001", "output": answer(v1, "v1-001")}).encode())
    (reply,) = load_predictions(path, known_ids=set(v1.by_id))
    assert reply.case_id == "v1-001"
    assert score_predictions(v1, path).valid_json.value == 1.0


def test_nan_in_a_record_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text('{"id": "v1-001", "output": {"entities": [], "relationships": [], "score": NaN}}\n')
    with pytest.raises(UsageError, match=r":1: not a JSON object \(NaN and Infinity are not JSON\)"):
        load_predictions(path)


def test_lines_are_yielded_as_they_are_read(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "v1-001", "output": "a"}) + "\nnot json\n")
    stream = iter_predictions(path)
    assert next(stream).case_id == "v1-001"  # the bad second line is not read yet
    with pytest.raises(UsageError, match=":2: not a JSON object"):
        next(stream)


def peak_bytes(evalset: EvalSet, path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        scored = score_predictions(evalset, path, keep_replies=False)
        return tracemalloc.get_traced_memory()[1], scored.replies
    finally:
        tracemalloc.stop()


def test_scoring_a_stream_holds_the_cases_not_the_replies(tmp_path: Path, v1: EvalSet) -> None:
    def file(name: str, repeats: int) -> Path:
        rows = [
            {"id": case.id, "output": answer(v1, case.id) + " " * 2000, "repeat": r}
            for r in range(repeats)
            for case in v1.cases
        ]
        return write(tmp_path / name, rows)

    small, large = file("small.jsonl", 10), file("large.jsonl", 40)
    score_predictions(v1, small, keep_replies=False)  # warm caches (schema validator, regexes)
    small_peak, small_n = peak_bytes(v1, small)
    large_peak, large_n = peak_bytes(v1, large)
    assert large_n == 4 * small_n
    assert large_peak < 1.5 * small_peak  # four times the replies, about the same memory
    assert large_peak < large.stat().st_size / 2  # and less than the file itself
    kept = score_predictions(v1, small)
    assert len(kept.per_reply) == small_n and kept.cases == len(v1.cases)
    streamed = score_predictions(v1, small, keep_replies=False)
    assert (
        streamed.per_reply == ()
        and streamed.as_is == kept.as_is
        and streamed.by_difficulty == kept.by_difficulty
    )
