"""benchsel.scoring.parse: strict JSON and what can be recovered from a messy reply."""

from __future__ import annotations

import json
import time

import pytest

from benchsel.scoring.parse import clean_text, loads_strict, parse_reply, recover, strip_thinking

ANSWER = {
    "entities": [{"name": "Docker", "role": "subject"}, {"name": "Kubernetes cluster", "role": "object"}],
    "relationships": [{"source": "Docker", "relation": "DEPLOYED_ON", "target": "Kubernetes cluster"}],
}
TEXT = json.dumps(ANSWER)


def test_strict_object_with_surrounding_whitespace() -> None:
    parsed = parse_reply(f"\n  {TEXT}\n\n")
    assert parsed.strict == ANSWER
    assert parsed.recovered == ANSWER
    assert parsed.recovery == "strict"
    assert parsed.strict_ok


def test_already_parsed_object_is_strict() -> None:
    parsed = parse_reply(ANSWER)
    assert parsed.strict == ANSWER and parsed.recovery == "object"


@pytest.mark.parametrize("reply", [None, "", "   \n\t "])
def test_empty_reply_holds_nothing(reply: str | None) -> None:
    parsed = parse_reply(reply)
    assert parsed.strict is None
    assert parsed.recovered is None
    assert parsed.recovery == "none"
    assert not parsed.strict_ok


@pytest.mark.parametrize(
    "reply",
    [
        f"```json\n{TEXT}\n```",
        f"```JSON\n{TEXT}\n```",
        f"```\n{TEXT}\n```",
        f"Here you go:\n```json\n{TEXT}\n```\nLet me know if you need more.",
        f"```json\n{TEXT}",  # the closing fence never came
    ],
)
def test_code_fences(reply: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.strict is None
    assert parsed.recovered == ANSWER
    assert parsed.recovery == "fence"


def test_fence_holding_no_object_falls_through_to_the_prose() -> None:
    reply = f"```python\nprint('hi')\n```\nAnswer: {TEXT}"
    parsed = parse_reply(reply)
    assert parsed.recovered == ANSWER
    assert parsed.recovery == "embedded"


def test_prose_around_json() -> None:
    parsed = parse_reply(f"Sure! Here is the graph: {TEXT} Hope this helps {{not json}}.")
    assert parsed.strict is None
    assert parsed.recovered == ANSWER
    assert parsed.recovery == "embedded"


def test_prose_with_braces_before_the_answer() -> None:
    parsed = parse_reply(f"I use {{braces}} loosely. {TEXT}")
    assert parsed.recovered == ANSWER


@pytest.mark.parametrize("tag", ["think", "thinking", "reasoning", "THINK"])
def test_thinking_preamble(tag: str) -> None:
    reply = f'<{tag}>The user wants {{"entities": []}}... let me think.</{tag}>\n\n{TEXT}'
    parsed = parse_reply(reply)
    assert parsed.strict is None
    assert parsed.recovered == ANSWER
    assert parsed.recovery == "think"


def test_thinking_then_fence() -> None:
    parsed = parse_reply(f"<think>hmm</think>\n```json\n{TEXT}\n```")
    assert parsed.recovered == ANSWER
    assert parsed.recovery == "fence"


def test_thinking_that_never_closed_reached_no_answer() -> None:
    parsed = parse_reply('<think>Maybe {"entities": [{"name": "Docker"}]} is right, but')
    assert parsed.recovered is None
    assert parsed.recovery == "none"


def test_strip_thinking_removes_every_closed_block_and_keeps_the_rest() -> None:
    text = "a<think>x</think>b<REASONING>y</reasoning>c<thinking>unclosed"
    assert strip_thinking(text) == "abc<thinking>unclosed"
    assert strip_thinking("no tags") == "no tags"


@pytest.mark.parametrize(
    "reply",
    [
        '{"entities": [{"name": "Docker",},], "relationships": [],}',
        'Answer: {"entities": [{"name": "Docker"},\n  ],\n "relationships": []}',
    ],
)
def test_trailing_commas(reply: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.strict is None
    assert parsed.recovered == {"entities": [{"name": "Docker"}], "relationships": []}
    assert parsed.recovery == "repaired"


def test_truncated_json_keeps_complete_items() -> None:
    reply = TEXT[: TEXT.index('"Kubernetes cluster", "role"') + 10]  # cut inside the second entity
    parsed = parse_reply(reply)
    assert parsed.strict is None
    assert parsed.recovery == "truncated"
    assert parsed.recovered == {"entities": [{"name": "Docker", "role": "subject"}]}


def test_truncated_inside_relationships() -> None:
    reply = TEXT[: TEXT.index('"target"')]
    parsed = parse_reply(reply)
    assert parsed.recovery == "truncated"
    assert parsed.recovered is not None
    assert parsed.recovered["entities"] == ANSWER["entities"]
    assert parsed.recovered["relationships"] == [{"source": "Docker", "relation": "DEPLOYED_ON"}]


def test_truncated_before_any_complete_item_recovers_nothing() -> None:
    parsed = parse_reply('{"entities": [{"name": "Dock')
    assert parsed.recovered is None
    assert parsed.recovery == "none"


@pytest.mark.parametrize("reply", ["[1, 2, 3]", "42", "true", "null", '"just a string"', "[{}, {}]"])
def test_json_that_is_not_an_object(reply: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.strict is None
    assert parsed.recovered is None
    assert parsed.recovery == "none"


def test_answer_in_a_one_element_list_or_a_json_string_is_recovered_not_strict() -> None:
    for reply in (json.dumps([ANSWER]), json.dumps(TEXT)):
        parsed = parse_reply(reply)
        assert parsed.strict is None
        assert parsed.recovered == ANSWER
        assert parsed.recovery == "embedded"


def test_five_megabyte_replies_are_fast() -> None:
    big_valid = json.dumps({**ANSWER, "padding": "x" * 5_000_000})
    big_prose = "word " * 1_000_000 + TEXT
    big_thinking = "<think>" + "hmm " * 1_250_000 + "</think>" + TEXT
    started = time.perf_counter()
    assert parse_reply(big_valid).strict is not None
    prose = parse_reply(big_prose)
    thinking = parse_reply(big_thinking)
    assert time.perf_counter() - started < 5
    # past the recovery limit only the strict parse is tried
    assert prose.strict is None and prose.recovered is None
    assert thinking.strict is None and thinking.recovered is None


@pytest.mark.parametrize(
    "reply",
    [
        "<think>" * 100_000 + TEXT,
        "x <think>" * 100_000 + TEXT,
        "{" * 900_000,
        "{ " * 400_000 + "}",
        "```" * 300_000,
        '{"a": "' + "{" * 500_000,
    ],
    ids=["think-opens", "think-opens-after-prose", "braces", "spaced-braces", "fences", "open-string"],
)
def test_pathological_replies_are_linear(reply: str) -> None:
    started = time.perf_counter()
    parse_reply(reply)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "reply",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"a":' * 100_000,
        "Answer: " + '{"a": [' * 100_000 + "]}" * 100_000,
        '{"entities": ' + "[" * 100_000,
    ],
    ids=["lists", "objects", "objects-unclosed", "in-prose", "under-a-key"],
)
def test_deep_nesting_never_raises(reply: str) -> None:
    parsed = parse_reply(reply)  # no RecursionError escapes
    assert parsed.strict is None
    assert parsed.recovery in ("none", "truncated", "embedded")


def test_lone_surrogates_are_replaced() -> None:
    reply = '{"entities": [{"name": "Dock\ud800er"}], "relationships": []}'
    parsed = parse_reply(reply)
    assert parsed.strict == {"entities": [{"name": "Dock?er"}], "relationships": []}
    assert clean_text("ok \udfff").encode("utf-8") == b"ok ?"


def test_invalid_utf8_bytes_are_replaced() -> None:
    parsed = parse_reply(b'{"entities": [{"name": "Docker \xff\xfe"}], "relationships": []}')
    assert parsed.strict == {"entities": [{"name": "Docker \ufffd\ufffd"}], "relationships": []}
    assert parse_reply(b"\xff\xfe\xfd").recovered is None


def test_truncation_repair_skips_brackets_and_escaped_quotes_inside_strings() -> None:
    reply = '{"entities": [{"name": "a \\"{[\\" b,"}, {"name": "c\\\\"}, {"name": "d [unfinished'
    parsed = parse_reply(reply)
    assert parsed.recovery == "truncated"
    assert parsed.recovered == {"entities": [{"name": 'a "{[" b,'}, {"name": "c\\"}]}


def test_truncated_after_thinking() -> None:
    parsed = parse_reply('<think>ok</think>{"entities": [{"name": "A"}, {"name": "B')
    assert parsed.recovery == "truncated"
    assert parsed.recovered == {"entities": [{"name": "A"}]}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_but_are_recovered(constant: str) -> None:
    reply = f'{{"entities": [], "relationships": [], "confidence": {constant}}}'
    parsed = parse_reply(reply)
    assert parsed.strict is None and not parsed.strict_ok
    assert parsed.recovered is not None and parsed.recovered["entities"] == []
    assert parsed.recovery != "strict"


def test_nan_inside_a_string_is_plain_text() -> None:
    parsed = parse_reply('{"entities": [{"name": "NaN", "role": "subject"}], "relationships": []}')
    assert parsed.strict_ok and parsed.strict is not None
    assert parsed.strict["entities"][0]["name"] == "NaN"


@pytest.mark.parametrize(
    "reply",
    [
        '{"entities": [], "relationships": []}',
        '[{"entities": [], "relationships": []}]',
        '"{\\"entities\\": [], \\"relationships\\": []}"',
        '{"entities": [], "relationships": [], "score": NaN}',
        '{"entities": [{"name": "Infinity"}], "relationships": []}',
        '<think>x</think>{"entities": [], "relationships": []}',
        '```json\n{"entities": [], "relationships": []}\n```',
        '{"entities": [{"name": "A"}, {"name": "B"',
        "null",
        "not json at all",
    ],
)
def test_parse_reply_agrees_with_a_strict_parse_then_recovery(reply: str) -> None:
    # parse_reply parses the text once for both views; the result is what parsing twice gives
    strict = loads_strict(reply)
    expected = (strict, strict, "strict") if isinstance(strict, dict) else (None, *recover(reply))
    parsed = parse_reply(reply)
    assert (parsed.strict, parsed.recovered, parsed.recovery) == expected
