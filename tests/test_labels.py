"""An imported set's label inventory: its prompt and schema, `evalset stats`, and the refusal to train
it on synthetic data that uses other labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_importers import SPERT

from benchsel.cli.main import cli, main
from benchsel.errors import UsageError
from benchsel.evalset import load_evalset
from benchsel.importers import import_file
from benchsel.labels import (
    GENERIC_RELATION_GLOSS,
    RELATION_GLOSSES,
    closed_relation_labels,
    label_inventory,
    require_synthetic_fit,
    synthetic_label_problem,
    synthetic_relation_labels,
)
from benchsel.scoring.match import normalize_relation
from benchsel.scoring.scorecard import schema_error


@pytest.fixture
def conll(tmp_path: Path) -> Path:
    source = tmp_path / "conll04_test.json"
    source.write_text(json.dumps(SPERT))
    import_file(source, tmp_path / "conll04", "spert")
    return tmp_path / "conll04"


def test_imported_prompt_lists_every_type_and_label_with_a_gloss(conll: Path) -> None:
    loaded = load_evalset(conll)
    inventory = label_inventory(loaded.cases)
    assert inventory.entity_types == {"peop": 3, "loc": 2, "org": 1}
    assert set(inventory.relation_labels) == {"WORK_FOR", "ORG_BASED_IN", "LIVE_IN", "KILLS"}
    system = loaded.prompt.system
    assert "Docker" not in system and "DEPLOYED_ON" not in system
    assert "  - peop: a person" in system
    assert f"  - WORK_FOR: {RELATION_GLOSSES['WORK_FOR']}" in system
    assert f"  - ORG_BASED_IN: {RELATION_GLOSSES['ORG_BASED_IN']}" in system
    # a label with no gloss of its own gets the generic one
    assert f"  - KILLS: {GENERIC_RELATION_GLOSS.format(label='KILLS')}" in system


def test_imported_schema_enumerates_labels_as_the_scorer_matches_them(conll: Path) -> None:
    loaded = load_evalset(conll)
    labels = closed_relation_labels(loaded.schema)
    assert labels is not None and set(labels) == {"WORK_FOR", "ORG_BASED_IN", "LIVE_IN", "KILLS"}
    assert all(normalize_relation(label) == label for label in labels)
    entity_type = loaded.schema["properties"]["entities"]["items"]["properties"]["type"]
    assert set(entity_type["enum"]) == {"peop", "org", "loc"}
    # the scorer's schema check: a perfect answer is schema-valid, a label outside the list is not
    for case in loaded.cases:
        assert schema_error(case.gold.model_dump(exclude_none=True), loaded.schema) is None
    bad = {"entities": [], "relationships": [{"source": "a", "relation": "DEPLOYED_ON", "target": "b"}]}
    assert schema_error(bad, loaded.schema) is not None


def test_bundled_sets_stay_open_vocabulary() -> None:
    loaded = load_evalset("extraction-v1")
    assert closed_relation_labels(loaded.schema) is None
    assert synthetic_label_problem(loaded) is None


def test_synthetic_data_for_an_imported_set_is_refused_with_the_reason(conll: Path) -> None:
    loaded = load_evalset(conll)
    assert not synthetic_relation_labels() >= {"WORK_FOR", "LIVE_IN"}
    with pytest.raises(UsageError) as info:
        require_synthetic_fit(loaded)
    message = str(info.value)
    assert "eval set 'conll04'" in message and "WORK_FOR" in message and "--data" in message


def test_train_data_generate_refuses_an_imported_set(conll: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "data",
            "generate",
            "--n",
            "4",
            "--evalset",
            str(conll),
            "--out",
            str(tmp_path / "t.jsonl"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "synthetic training data does not fit eval set 'conll04'" in result.output
    assert not (tmp_path / "t.jsonl").exists()


def test_cli_import_prints_inventory_and_stats_shows_types(
    tmp_path: Path, conll: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    source = tmp_path / "again.json"
    source.write_text(json.dumps(SPERT))
    main(["evalset", "import", "--format", "spert", str(source), str(tmp_path / "again")])
    out = capsys.readouterr().out
    assert "entity types: peop 3, loc 2, org 1" in out
    assert "relation labels: " in out and "WORK_FOR 1" in out
    main(["evalset", "stats", str(conll)])
    assert "entity types: peop 3, loc 2, org 1" in capsys.readouterr().out


def test_import_with_no_valid_record_prints_the_skipped_reasons(tmp_path: Path) -> None:
    source = tmp_path / "broken.json"
    source.write_text(json.dumps(SPERT[2:4]))
    with pytest.raises(UsageError) as info:
        import_file(source, tmp_path / "out", "spert")
    message = str(info.value)
    assert "no record produced a valid case" in message
    assert "3: malformed record (ValueError: entity span [0, 5) is outside the 2 tokens)" in message
    assert "4: malformed record (IndexError" in message
    assert "see the skipped list" not in message
    assert not (tmp_path / "out").exists()
