"""benchsel.evalset: loading, validation errors with file/line/reason, prompt, stats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchsel.errors import EvalSetError, UsageError
from benchsel.evalset import bundled_root, load_evalset, parse_prompt, resolve_evalset, stats


def case(case_id: str = "c1", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": case_id,
        "text": "Nginx forwards requests to Gunicorn.",
        "gold": {
            "entities": [{"name": "Nginx", "type": "software"}, {"name": "Gunicorn"}],
            "relationships": [{"source": "Nginx", "relation": "FORWARDS_TO", "target": "Gunicorn"}],
        },
        "difficulty": "simple",
        "tags": ["t"],
    }
    record.update(overrides)
    return record


def write_cases(root: Path, *records: dict[str, Any] | str) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (root / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def evalset_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    shutil.copytree(bundled_root() / "extraction-v1", root)
    (root / "evalset.toml").write_text(
        'name = "mini"\nsymmetric_relations = ["partners with"]\n\n[defaults]\nnum_predict = 256\n'
    )
    write_cases(root, case("c1"), case("c2", difficulty="adversarial"))
    return root


def test_loads_a_valid_directory(evalset_dir: Path) -> None:
    loaded = load_evalset(evalset_dir)
    assert loaded.name == "mini"
    assert [c.id for c in loaded.cases] == ["c1", "c2"]
    assert loaded.symmetric_relations == frozenset({"PARTNERS_WITH"})
    assert loaded.manifest.defaults.num_predict == 256
    assert loaded.manifest.defaults.num_ctx == 4096
    assert loaded.case("c2").difficulty == "adversarial"
    assert load_evalset(evalset_dir / "evalset.toml").content_hash == loaded.content_hash


def test_content_hash_follows_the_files(evalset_dir: Path) -> None:
    before = load_evalset(evalset_dir).content_hash
    write_cases(evalset_dir, case("c1"))
    assert load_evalset(evalset_dir).content_hash != before


def test_unknown_case_id(evalset_dir: Path) -> None:
    with pytest.raises(EvalSetError, match="has no case 'nope'"):
        load_evalset(evalset_dir).case("nope")


def test_bundled_names_resolve() -> None:
    assert resolve_evalset("extraction-v1") == bundled_root() / "extraction-v1"
    with pytest.raises(EvalSetError, match="not found.*extraction-v1"):
        resolve_evalset("no-such-set")


def _error(evalset_dir: Path) -> str:
    with pytest.raises(EvalSetError) as info:
        load_evalset(evalset_dir)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("records", "line", "reason"),
    [
        ((case("c1"), case("c1")), 2, "duplicate id 'c1' (first on line 1)"),
        (
            (case("c1"), case("c2", gold={"entities": [{"name": "Apache"}]})),
            2,
            "case 'c2': gold entity 'Apache' does not occur in the text",
        ),
        (
            (
                case(
                    "c1",
                    gold={
                        "entities": [{"name": "Nginx"}],
                        "relationships": [{"source": "Nginx", "relation": "X", "target": "Gunicorn"}],
                    },
                ),
            ),
            1,
            "relationship end 'Gunicorn' (X) is not a gold entity",
        ),
        ((case("c1", difficulty="hard"),), 1, "difficulty: unknown difficulty 'hard', use one of simple"),
        ((case("c1"), '{"id": "c2", "text": '), 2, "not valid JSON"),
        ((case("c1", colour="red"),), 1, "colour: unknown field"),
        (
            (case("c1", gold={"entities": [{"name": "Nginx", "kind": "x"}]}),),
            1,
            "gold.entities.0.kind: unknown",
        ),
        ((case("c1", text=""),), 1, "text: String should have at least 1 character"),
        (({k: v for k, v in case("c1").items() if k != "gold"},), 1, "gold: Field required"),
    ],
    ids=[
        "duplicate-id",
        "name-not-in-text",
        "relationship-end",
        "difficulty",
        "malformed-json",
        "unknown-field",
        "unknown-nested-field",
        "empty-text",
        "missing-gold",
    ],
)
def test_case_errors_name_file_line_and_reason(
    evalset_dir: Path, records: tuple[Any, ...], line: int, reason: str
) -> None:
    write_cases(evalset_dir, *records)
    message = _error(evalset_dir)
    assert message.startswith(f"{evalset_dir / 'cases.jsonl'}:{line}: ")
    assert reason in message


def test_blank_lines_keep_line_numbers(evalset_dir: Path) -> None:
    write_cases(evalset_dir, case("c1"), "", "   ", case("c1"))
    assert "cases.jsonl:4: duplicate id 'c1'" in _error(evalset_dir)


def test_empty_and_non_utf8_cases(evalset_dir: Path) -> None:
    (evalset_dir / "cases.jsonl").write_text("\n\n")
    assert _error(evalset_dir).endswith("cases.jsonl: holds no cases")
    (evalset_dir / "cases.jsonl").write_bytes(b'{"id": "\xff"}\n')
    assert "cases.jsonl:1: not UTF-8" in _error(evalset_dir)


def test_schema_that_is_not_valid_json_schema(evalset_dir: Path) -> None:
    (evalset_dir / "schema.json").write_text('{"type": "objekt"}')
    message = _error(evalset_dir)
    assert message.startswith(f"{evalset_dir / 'schema.json'}: not a valid JSON Schema at type")
    (evalset_dir / "schema.json").write_text('{"type": ')
    assert "schema.json: not valid JSON" in _error(evalset_dir)
    (evalset_dir / "schema.json").write_text("[]")
    assert "schema.json: a JSON Schema must be an object" in _error(evalset_dir)


@pytest.mark.parametrize("part", ["evalset.toml", "prompt.md", "schema.json", "cases.jsonl"])
def test_missing_files(evalset_dir: Path, part: str) -> None:
    (evalset_dir / part).unlink()
    message = _error(evalset_dir)
    assert message.startswith(f"{evalset_dir / part}: missing")


def test_manifest_errors(evalset_dir: Path) -> None:
    manifest = evalset_dir / "evalset.toml"
    manifest.write_text('name = "mini"\nnmae = "typo"\n')
    assert _error(evalset_dir) == f"{manifest}: nmae: unknown field (typo?)"
    manifest.write_text('name = "mini"\n[defaults]\nnum_predict = 0\n')
    assert f"{manifest}: defaults.num_predict: Input should be greater than 0" == _error(evalset_dir)
    manifest.write_text("name = = \n")
    assert _error(evalset_dir).startswith(f"{manifest}: not valid TOML")
    manifest.write_text('name = "has space"\n')
    assert _error(evalset_dir).startswith(f"{manifest}: name: String should match pattern")


def test_prompt_without_text_placeholder(evalset_dir: Path) -> None:
    (evalset_dir / "prompt.md").write_text("# System\nBe brief.\n\n# User\nExtract from the text.\n")
    assert _error(evalset_dir) == (
        f"{evalset_dir / 'prompt.md'}: the '# User' section must contain {{text}} where the case text goes"
    )
    (evalset_dir / "prompt.md").write_text("Extract {text}\n")
    assert "needs a '# User' section" in _error(evalset_dir)


def test_parse_prompt_and_messages() -> None:
    prompt = parse_prompt("# System\n\nBe exact.\n\n# User\n\nText: {text}\nJSON:\n")
    assert prompt.messages("Hi {there}") == [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "Text: Hi {there}\nJSON:"},
    ]
    no_system = parse_prompt("# user\n{text}")
    assert no_system.messages("x") == [{"role": "user", "content": "x"}]
    assert prompt.sha256 != no_system.sha256


def test_stats(evalset_dir: Path) -> None:
    write_cases(
        evalset_dir,
        case("c1"),
        case("c2", difficulty="complex", text="Nginx forwards to Gunicorn, a server."),
        case("c3", gold={"entities": [{"name": "Nginx"}]}, text="Nginx."),
    )
    s = stats(load_evalset(evalset_dir))
    assert s.cases == 3
    assert s.by_difficulty == {"simple": 2, "medium": 0, "complex": 1, "adversarial": 0}
    assert (s.entities, s.relationships, s.cases_without_relationships) == (5, 2, 1)
    assert s.relation_labels == {"FORWARDS_TO": 2}
    assert (s.text_chars_min, s.text_chars_max) == (6, 37)
    assert s.text_chars_median == len("Nginx forwards requests to Gunicorn.")
