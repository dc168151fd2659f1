"""The metrics JSON: the same data as score_to_dict, written fast (one line per case row)."""

from __future__ import annotations

import gc
import json
from pathlib import Path

from benchsel.evalset import load_evalset
from benchsel.scoring.export import metrics_json, score_to_dict, write_metrics
from benchsel.scoring.scorecard import ReplyInput, gc_paused, score


def test_metrics_json_holds_exactly_score_to_dict_one_case_per_line(tmp_path: Path) -> None:
    evalset = load_evalset("extraction-v1")
    answer = {"entities": [{"name": "Docker", "role": "subject"}], "relationships": []}
    replies = [ReplyInput(case.id, json.dumps(answer)) for case in evalset.cases]
    replies.append(ReplyInput(evalset.cases[0].id, '```json\n{"entities": [\n', repeat=1))
    scored = score(evalset, replies)
    path = tmp_path / "out" / "metrics.json"
    write_metrics(scored, path)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(json.dumps(score_to_dict(scored)))
    case_lines = [line for line in text.splitlines() if line.startswith('    {"id": ')]
    assert len(case_lines) == len(replies)


def test_metrics_json_of_no_replies_is_valid() -> None:
    data = json.loads(metrics_json(score(load_evalset("extraction-v1"), [])))
    assert data["cases"] == [] and data["replies"] == 0


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
