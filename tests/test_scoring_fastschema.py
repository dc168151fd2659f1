"""benchsel.scoring.fastschema agrees with jsonschema on every instance, for the schemas it accepts."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from benchsel.evalset import load_evalset
from benchsel.scoring.fastschema import compile_schema

SCHEMA = load_evalset("extraction-v1").schema

OTHER_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"n": {"type": "integer"}, "x": {"type": "number"}}},
    {"type": ["object", "null"], "required": ["a"], "additionalProperties": {"type": "string"}},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
    {"properties": {"s": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z]+$"}}},
    {"properties": {"e": {"enum": ["a", "b"]}}, "additionalProperties": False},
    {"title": "anything"},
    True,
    False,
]

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    1.5,
    -3,
    "",
    "a",
    "ab",
    "abcd",
    "AB",
    [],
    [True],
    {},
    {"a": 1},
]


def _mutations(answer: dict[str, Any], rng: random.Random) -> list[Any]:
    out: list[Any] = [answer]
    for _ in range(6):
        mutated = copy.deepcopy(answer)
        target: Any = mutated
        path = rng.choice([("entities",), ("relationships",), ("entities", 0), ("relationships", 0), ()])
        try:
            for part in path:
                target = target[part]
        except (IndexError, KeyError):
            continue
        if isinstance(target, dict):
            key = rng.choice([*target, "extra", "name", "role", "relation"])
            target[key] = rng.choice(ODD_VALUES + ["subject", "object", "RUNS_ON", "runs on"])
        elif isinstance(target, list):
            target.append(rng.choice(ODD_VALUES))
        out.append(mutated)
    out.append({k: v for k, v in answer.items() if k != "relationships"})
    return out


def _instances() -> list[Any]:
    rng = random.Random(0)
    full = load_evalset("extraction-v1-full")
    instances: list[Any] = list(ODD_VALUES)
    for case in full.cases:
        answer = json.loads(json.dumps(case.gold.model_dump(exclude_none=True)))
        instances.extend(_mutations(answer, rng))
    return instances


INSTANCES = _instances()


@pytest.mark.parametrize("schema", [SCHEMA, *OTHER_SCHEMAS], ids=lambda s: json.dumps(s)[:40])
def test_agrees_with_jsonschema(schema: Any) -> None:
    check = compile_schema(schema)
    assert check is not None
    validator = Draft202012Validator(schema)
    extra = [{"n": 2.0}, {"n": True}, {"x": True}, {"x": 2}, {"s": "abc"}, {"s": "a"}, {"s": 3}, {"e": "c"}]
    extra += [{"e": "a"}, {"a": "x", "b": 1}, [True, False, True], [True, 1]]
    disagreements = [i for i in INSTANCES + extra if check(i) != validator.is_valid(i)]
    assert disagreements == []
    accepts_all = isinstance(schema, bool) or set(schema) == {"title"}
    assert len({check(i) for i in INSTANCES + extra}) == (1 if accepts_all else 2)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^a": {}}},
        {"anyOf": [{"type": "string"}]},
        {"enum": [1, True]},
        {"properties": {"x": {"$ref": "#/$defs/x"}}},
        {"type": "decimal"},
        {"items": {"format": "email"}},
    ],
)
def test_other_keywords_fall_back_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_schema(schema) is None
