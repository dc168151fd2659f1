"""benchsel.scoring.scorecard: as-is and content views, format debt, schema checks, totals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchsel.evalset import EvalSet, load_evalset
from benchsel.scoring import score_predictions
from benchsel.scoring.export import score_to_dict
from benchsel.scoring.match import Counts
from benchsel.scoring.parse import parse_reply
from benchsel.scoring.scorecard import ReplyInput, schema_check, schema_error, score, score_reply


@pytest.fixture(scope="module")
def v1() -> EvalSet:
    return load_evalset("extraction-v1")


def gold_answer(evalset: EvalSet, case_id: str) -> dict[str, Any]:
    return evalset.case(case_id).gold.model_dump(exclude_none=True)


def test_fenced_reply_is_invalid_as_is_but_scores_in_content(v1: EvalSet) -> None:
    case = v1.case("v1-001")
    fenced = f"```json\n{json.dumps(gold_answer(v1, 'v1-001'))}\n```"
    scored = score_reply(case, parse_reply(fenced), schema=v1.schema)
    assert not scored.strict_json and not scored.schema_valid
    assert scored.schema_error == "not valid JSON"
    assert scored.recovered and scored.recovery == "fence"
    assert scored.as_is.entities.counts == Counts(0, 0, 3)
    assert scored.as_is.relationships.counts == Counts(0, 0, 2)
    assert scored.content.entities.counts == Counts(3, 0, 0)
    assert scored.content.relationships.counts == Counts(2, 0, 0)


def test_valid_reply_scores_the_same_in_both_views(v1: EvalSet) -> None:
    scored = score_reply(
        v1.case("v1-001"), parse_reply(json.dumps(gold_answer(v1, "v1-001"))), schema=v1.schema
    )
    assert scored.strict_json and scored.schema_valid and scored.schema_error is None
    assert scored.as_is == scored.content
    assert scored.content_entity_f1 == 1.0


def test_schema_error_names_where(v1: EvalSet) -> None:
    answer = {"entities": [{"name": "Docker", "role": "boss"}], "relationships": []}
    assert schema_error(answer, v1.schema) == "entities/0/role: 'boss' is not one of ['subject', 'object']"
    assert schema_error({"entities": []}, v1.schema) == "'relationships' is a required property"
    bad_label = {"entities": [], "relationships": [{"source": "a", "relation": "runs on", "target": "b"}]}
    assert schema_error(bad_label, v1.schema) is not None
    assert schema_error(gold_answer(v1, "v1-001"), v1.schema) is None


def test_wrong_schema_still_scores(v1: EvalSet) -> None:
    answer = {"entities": ["Docker", {"name": "Kubernetes cluster", "role": "x"}], "relationships": "none"}
    scored = score_reply(v1.case("v1-001"), parse_reply(json.dumps(answer)), schema=v1.schema)
    assert scored.strict_json and not scored.schema_valid
    assert scored.as_is.entities.counts == Counts(2, 0, 1)
    assert scored.as_is.relationships.counts == Counts(0, 0, 2)


def _replies(v1: EvalSet) -> list[ReplyInput]:
    """Three cases: a perfect valid reply, the same answer fenced, and an empty reply."""
    perfect = json.dumps(gold_answer(v1, "v1-001"))
    fenced = "Sure:\n```json\n" + json.dumps(gold_answer(v1, "v1-002")) + "\n```"
    return [ReplyInput("v1-001", perfect), ReplyInput("v1-002", fenced), ReplyInput("v1-003", "")]


def test_score_by_hand(v1: EvalSet) -> None:
    result = score(v1, _replies(v1), resamples=200)
    # gold: v1-001 3 entities 2 relationships; v1-002 2 and 1; v1-003 2 and 1
    assert result.replies == 3 and result.errors == 0
    assert result.valid_json.value == pytest.approx(1 / 3)
    assert result.recovered.value == pytest.approx(2 / 3)
    assert result.as_is.entities.counts == Counts(3, 0, 4)
    assert round(result.as_is.entities.recall.value, 4) == 0.4286
    assert round(result.as_is.entities.f1.value, 4) == 0.6  # 6 / 10
    assert result.as_is.entities.precision.value == 1.0
    assert result.content.entities.counts == Counts(5, 0, 2)
    assert round(result.content.entities.f1.value, 4) == 0.8333  # 10 / 12
    assert result.content.relationships.counts == Counts(3, 0, 1)
    assert round(result.content.relationships.f1.value, 4) == 0.8571  # 6 / 7
    assert round(result.format_debt, 4) == round(0.8333 - 0.6, 4)
    assert result.relationship_format_debt > 0
    assert result.by_difficulty["simple"].replies == 3
    assert result.by_difficulty["simple"].valid_json == pytest.approx(1 / 3)


def test_transport_errors_are_counted_apart(v1: EvalSet) -> None:
    replies = [*_replies(v1), ReplyInput("v1-004", None, error="timeout")]
    result = score(v1, replies, resamples=50)
    assert result.errors == 1 and result.replies == 3


def test_repeats_of_a_case_move_together(v1: EvalSet) -> None:
    perfect = json.dumps(gold_answer(v1, "v1-001"))
    replies = [ReplyInput("v1-001", perfect, repeat=i) for i in range(3)] + [ReplyInput("v1-002", "")]
    result = score(v1, replies, resamples=100)
    assert result.as_is.entities.counts == Counts(9, 0, 2)
    assert len(result.per_reply) == 4


def test_strict_mode_flows_through(v1: EvalSet) -> None:
    answer = gold_answer(v1, "v1-002")
    answer["entities"][0]["type"] = "database"
    loose = score(v1, [ReplyInput("v1-002", answer)], resamples=10)
    strict = score(v1, [ReplyInput("v1-002", answer)], strict=True, resamples=10)
    assert loose.content.entities.counts == Counts(2, 0, 0)
    assert strict.content.entities.counts == Counts(1, 1, 1)


def test_score_is_seeded(v1: EvalSet) -> None:
    a = score_to_dict(score(v1, _replies(v1), seed=3, resamples=100))
    b = score_to_dict(score(v1, _replies(v1), seed=3, resamples=100))
    assert a == b


def test_export_holds_every_metric_and_row(v1: EvalSet) -> None:
    out = score_to_dict(score(v1, _replies(v1), resamples=50))
    json.dumps(out)
    assert set(out) == {
        "replies",
        "errors",
        "valid_json",
        "schema_valid",
        "recovered",
        "as_is",
        "content",
        "format_debt",
        "by_difficulty",
        "cases",
    }
    assert set(out["as_is"]["entities"]) == {"precision", "recall", "f1", "tp", "fp", "fn"}
    assert [row["id"] for row in out["cases"]] == ["v1-001", "v1-002", "v1-003"]
    fenced = out["cases"][1]
    assert fenced["recovery"] == "fence" and fenced["strict_json"] is False
    assert fenced["content_entities"]["matched"] == ["nginx", "gunicorn"]
    assert fenced["as_is_entities"]["missed"] == ["nginx", "gunicorn"]


def test_score_predictions_file(v1: EvalSet, tmp_path: Any) -> None:
    path = tmp_path / "p.jsonl"
    rows = [{"id": "v1-001", "output": gold_answer(v1, "v1-001")}, {"id": "v1-002", "output": "nope"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = score_predictions("extraction-v1", path)
    assert result.valid_json.value == 0.5
    assert result.as_is.entities.counts.tp == 3


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_a_reply_is_neither_valid_json_nor_schema_valid(v1: EvalSet, constant: str) -> None:
    answer = json.dumps(gold_answer(v1, "v1-001"))[:-1] + f', "confidence": {constant}}}'
    result = score(v1, [ReplyInput("v1-001", answer)])
    assert result.valid_json.value == 0.0 and result.schema_valid.value == 0.0
    assert result.recovered.value == 1.0
    assert result.content.entities.f1.value == 1.0  # the content view still reads the answer
    assert result.as_is.entities.f1.value == 0.0


def test_the_schema_check_follows_the_schema_not_the_object(v1: EvalSet) -> None:
    answer = gold_answer(v1, "v1-001")
    schema = json.loads(json.dumps(v1.schema))
    assert schema_error(answer, schema) is None
    schema["required"] = [*schema.get("required", []), "summary"]  # the same dict, now stricter
    assert schema_error(answer, schema) == "'summary' is a required property"
    assert schema_error(answer, schema_check(v1.schema)) is None
