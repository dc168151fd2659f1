"""The eval sets shipped in evalsets/: they load, they are balanced, and every gold answer is well formed."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from jsonschema import Draft202012Validator

from benchsel.evalset import DIFFICULTIES, EvalSet, bundled_evalsets, load_evalset
from benchsel.scoring.match import normalize_name

MIN_CASES = {"extraction-v1": 20, "extraction-v1-full": 150}
FULL_DOMAINS = ("infra", "biz", "sci", "news", "med")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@pytest.fixture(autouse=True)
def _source_tree_evalsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHSEL_EVALSETS", raising=False)


def _load(name: str) -> EvalSet:
    return load_evalset(name)


def test_both_sets_are_bundled() -> None:
    names = {path.name for path in bundled_evalsets()}
    assert set(MIN_CASES) <= names


@pytest.mark.parametrize("name", sorted(MIN_CASES))
def test_case_count_and_difficulty_ladder(name: str) -> None:
    evalset = _load(name)
    assert evalset.name == name
    assert len(evalset.cases) >= MIN_CASES[name]
    by_difficulty = Counter(case.difficulty for case in evalset.cases)
    assert set(by_difficulty) == set(DIFFICULTIES)


def test_v1_starts_with_the_design_example() -> None:
    first = _load("extraction-v1").cases[0]
    assert first.text == "Docker is deployed on the production Kubernetes cluster managed by the DevOps team."
    triples = {(r.source, r.relation, r.target) for r in first.gold.relationships}
    assert triples == {
        ("Docker", "DEPLOYED_ON", "Kubernetes cluster"),
        ("DevOps team", "MANAGES", "Kubernetes cluster"),
    }


def test_full_set_covers_every_domain_and_empty_answers() -> None:
    evalset = _load("extraction-v1-full")
    domains = Counter(case.id.split("-")[0] for case in evalset.cases)
    assert set(FULL_DOMAINS) <= set(domains)
    assert min(domains[d] for d in FULL_DOMAINS) >= 25
    assert sum(1 for case in evalset.cases if not case.gold.relationships) >= 10
    assert max(len(case.gold.relationships) for case in evalset.cases) <= 6


def test_full_set_shares_the_v1_prompt_and_schema() -> None:
    v1, full = _load("extraction-v1"), _load("extraction-v1-full")
    assert full.prompt == v1.prompt
    assert full.schema == v1.schema
    assert full.manifest.defaults == v1.manifest.defaults


@pytest.mark.parametrize("name", sorted(MIN_CASES))
def test_relation_labels_are_upper_snake_case(name: str) -> None:
    bad = [
        (case.id, rel.relation)
        for case in _load(name).cases
        for rel in case.gold.relationships
        if not UPPER_SNAKE.match(rel.relation)
    ]
    assert bad == []


@pytest.mark.parametrize("name", sorted(MIN_CASES))
def test_every_gold_answer_validates_against_the_schema(name: str) -> None:
    evalset = _load(name)
    validator = Draft202012Validator(evalset.schema)
    failures = {}
    for case in evalset.cases:
        errors = [e.message for e in validator.iter_errors(case.gold.model_dump(exclude_none=True))]
        if errors:
            failures[case.id] = errors
    assert failures == {}


@pytest.mark.parametrize("name", sorted(MIN_CASES))
def test_roles_follow_the_relationships(name: str) -> None:
    wrong = []
    for case in _load(name).cases:
        sources = {normalize_name(rel.source) for rel in case.gold.relationships}
        for entity in case.gold.entities:
            expected = "subject" if normalize_name(entity.name) in sources else "object"
            if entity.role != expected:
                wrong.append((case.id, entity.name, entity.role))
    assert wrong == []


@pytest.mark.parametrize("name", sorted(MIN_CASES))
def test_gold_names_are_copied_verbatim_and_unique(name: str) -> None:
    problems = []
    for case in _load(name).cases:
        names = [entity.name for entity in case.gold.entities]
        problems += [(case.id, n) for n in names if n not in case.text]
        if len({normalize_name(n) for n in names}) != len(names):
            problems.append((case.id, "duplicate entity"))
    assert problems == []


@pytest.mark.parametrize("name", sorted(MIN_CASES))
def test_prompt_describes_every_top_level_key(name: str) -> None:
    evalset = _load(name)
    prompt = f"{evalset.prompt.system}\n{evalset.prompt.user_template}"
    assert evalset.prompt.user_template.count("{text}") == 1
    for key in evalset.schema["properties"]:
        assert f'"{key}"' in prompt, key
    for key in ("name", "type", "role", "source", "relation", "target"):
        assert f'"{key}"' in prompt, key
