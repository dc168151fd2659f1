"""benchsel.importers: SpERT JSON and generic JSONL into an eval set directory that validates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchsel.errors import UsageError
from benchsel.evalset import load_evalset
from benchsel.importers import FieldMap, detokenize, from_jsonl_records, from_spert, import_file

SPERT: list[dict[str, Any]] = [
    {
        "orig_id": 1,
        "tokens": [
            "John",
            "Smith",
            "'s",
            "company",
            "(",
            "Acme",
            "Corp",
            ")",
            "is",
            "based",
            "in",
            "Boston",
            ".",
        ],
        "entities": [
            {"type": "Peop", "start": 0, "end": 2},
            {"type": "Org", "start": 5, "end": 7},
            {"type": "Loc", "start": 11, "end": 12},
        ],
        "relations": [
            {"type": "Work_For", "head": 0, "tail": 1},
            {"type": "OrgBased_In", "head": 1, "tail": 2},
        ],
    },
    {
        "orig_id": 2,
        "tokens": ["``", "Mary", "''", "did", "n't", "leave", "Paris", ",", "but", "Mary", "met", "Bob", "."],
        "entities": [
            {"type": "Peop", "start": 1, "end": 2},
            {"type": "Loc", "start": 6, "end": 7},
            {"type": "Peop", "start": 9, "end": 10},  # the same name again
            {"type": "Peop", "start": 11, "end": 12},
        ],
        "relations": [
            {"type": "Live_In", "head": 0, "tail": 1},
            {"type": "Live_In", "head": 2, "tail": 1},  # duplicates the first once names collapse
            {"type": "kills", "head": 2, "tail": 3},
        ],
    },
    {
        "orig_id": 3,
        "tokens": ["Broken", "."],
        "entities": [{"type": "X", "start": 0, "end": 5}],
        "relations": [],
    },
    {"orig_id": 4, "tokens": ["No", "tokens", "key"], "relations": [{"type": "R", "head": -1, "tail": 0}]},
    {"entities": []},
]


def test_detokenize_punctuation_clitics_brackets_quotes() -> None:
    text, spans = detokenize(SPERT[0]["tokens"])
    assert text == "John Smith's company (Acme Corp) is based in Boston."
    assert [text[a:b] for a, b in spans] == SPERT[0]["tokens"]
    text, _ = detokenize(SPERT[1]["tokens"])
    assert text == '"Mary" didn\'t leave Paris, but Mary met Bob.'
    assert detokenize(["-LRB-", "x", "-RRB-", "costs", "$", "5", "or", "10", "%"])[0] == "(x) costs $5 or 10%"
    assert detokenize([]) == ("", [])


def test_from_spert() -> None:
    cases, skipped = from_spert(SPERT, prefix="conll")
    assert [c.id for c in cases] == ["1", "2"]
    first, second = cases
    assert first.text == "John Smith's company (Acme Corp) is based in Boston."
    assert [(e.name, e.type, e.role) for e in first.gold.entities] == [
        ("John Smith", "peop", "subject"),
        ("Acme Corp", "org", "subject"),
        ("Boston", "loc", "object"),
    ]
    assert [(r.source, r.relation, r.target) for r in first.gold.relationships] == [
        ("John Smith", "WORK_FOR", "Acme Corp"),
        ("Acme Corp", "ORG_BASED_IN", "Boston"),
    ]
    assert [e.name for e in second.gold.entities] == ["Mary", "Paris", "Bob"]
    assert [(r.source, r.relation, r.target) for r in second.gold.relationships] == [
        ("Mary", "LIVE_IN", "Paris"),
        ("Mary", "KILLS", "Bob"),
    ]
    assert second.tags == ["imported"]
    assert len(skipped) == 3
    assert skipped[0].startswith(
        "3: malformed record (ValueError: entity span [0, 5) is outside the 2 tokens"
    )
    assert skipped[1] == "4: malformed record (IndexError: relation R joins entity -1 and 0 of 0)"
    assert skipped[2].startswith("conll-00005: malformed record (KeyError")


def test_spert_relation_index_out_of_range_and_duplicate_ids() -> None:
    record = {"orig_id": "a", "tokens": ["A", "met", "B"], "entities": [{"type": "P", "start": 0, "end": 1}]}
    bad = {**record, "relations": [{"type": "MET", "head": 0, "tail": -1}]}
    cases, skipped = from_spert([record, record, bad])
    assert len(cases) == 1
    assert skipped == [
        "a: duplicate id (an earlier record has it)",
        "a: duplicate id (an earlier record has it)",
    ]
    cases, skipped = from_spert([bad])
    assert cases == [] and "IndexError" in skipped[0]


def test_import_spert_file_validates(tmp_path: Path) -> None:
    source = tmp_path / "conll04_test.json"
    source.write_text(json.dumps(SPERT))
    report = import_file(source, tmp_path / "conll04", "spert")
    assert report.cases == 2 and len(report.skipped) == 3
    loaded = load_evalset(tmp_path / "conll04")
    assert loaded.name == "conll04"
    assert [c.id for c in loaded.cases] == ["1", "2"]
    assert loaded.case("2").difficulty == "medium"
    assert "{text}" in loaded.prompt.user_template
    with pytest.raises(UsageError, match="already holds an eval set"):
        import_file(source, tmp_path / "conll04", "spert")


JSONL = [
    {
        "meta": {"key": "r1"},
        "sentence": "Alice founded Initech in Austin.",
        "mentions": [{"surface": "Alice", "label": "PER"}, {"surface": "Initech"}, {"surface": "Austin"}],
        "triples": [
            {"subj": "Alice", "pred": "founded", "obj": 1},
            {"subj": 1, "pred": "located in", "obj": "Austin"},
        ],
    },
    {"meta": {"key": "r2"}, "sentence": "Nothing here.", "mentions": [], "triples": []},
    {"meta": {"key": "r3"}, "sentence": "Bob works.", "mentions": [{"surface": "Carol"}], "triples": []},
    {
        "meta": {"key": "r4"},
        "sentence": "Dan works.",
        "mentions": [{"surface": "Dan"}],
        "triples": [{"subj": "Eve", "pred": "x", "obj": 0}],
    },
    {
        "meta": {"key": "r5"},
        "sentence": "Dan works.",
        "mentions": [{"surface": "Dan"}],
        "triples": [{"subj": 0, "pred": "???", "obj": 0}],
    },
    {"meta": {"key": "r6"}, "text": "wrong field"},
]
FIELDS = FieldMap(
    id="meta.key",
    text="sentence",
    entities="mentions",
    entity_name="surface",
    entity_type="label",
    relations="triples",
    head="subj",
    relation="pred",
    tail="obj",
)


def test_from_jsonl_with_remapped_fields() -> None:
    cases, skipped = from_jsonl_records(JSONL, FIELDS)
    assert [c.id for c in cases] == ["r1", "r2"]
    assert [(r.source, r.relation, r.target) for r in cases[0].gold.relationships] == [
        ("Alice", "FOUNDED", "Initech"),
        ("Initech", "LOCATED_IN", "Austin"),
    ]
    assert cases[0].gold.entities[0].type == "per"
    assert [line.split(":")[0] for line in skipped] == ["r3", "r4", "r5", "r6"]
    assert "gold entity 'Carol' does not occur in the text" in skipped[0]
    assert "names an unknown entity" in skipped[1]
    assert "malformed record" in skipped[2]


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        import_file(tmp_path / "missing.json", tmp_path / "out", "spert")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(UsageError, match="not JSON or JSONL"):
        import_file(bad, tmp_path / "out", "jsonl")
    bad.write_text("[1, 2]")
    with pytest.raises(UsageError, match="expected a list of objects"):
        import_file(bad, tmp_path / "out", "spert")
    bad.write_text(json.dumps(SPERT[2:4]))
    with pytest.raises(UsageError, match="no record produced a valid case"):
        import_file(bad, tmp_path / "out", "spert")
    with pytest.raises(UsageError, match="unknown import format"):
        import_file(bad, tmp_path / "out", "xml")
