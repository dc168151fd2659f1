import json
import re
from collections import Counter

import pytest
from jsonschema import Draft202012Validator

from benchsel.evalset import check_case, load_evalset
from benchsel.synthetic import DOMAINS, MAX_RELATIONSHIPS, generate_synthetic
from benchsel.train.data import write_jsonl
from benchsel.train.synth import generate


@pytest.fixture(scope="module")
def synthetic():
    return generate_synthetic(600, seed=3)


@pytest.fixture(scope="module")
def evalset():
    return load_evalset("extraction-v1")


def test_generates_at_least_500_distinct_texts(synthetic):
    texts = {s.case.text for s in synthetic}
    assert len(synthetic) == 600
    assert len(texts) == 600
    assert len({s.case.id for s in synthetic}) == 600


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path):
    first = write_jsonl([s.case for s in generate_synthetic(80, seed=11)], tmp_path / "a.jsonl")
    again = write_jsonl([s.case for s in generate_synthetic(80, seed=11)], tmp_path / "b.jsonl")
    other = write_jsonl([s.case for s in generate_synthetic(80, seed=12)], tmp_path / "c.jsonl")
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_gold_is_grounded_in_the_text(synthetic):
    for s in synthetic:
        case = s.case
        assert check_case(case) is None, case.id
        names = [e.name for e in case.gold.entities]
        assert len(names) == len(set(names))
        for name in names:
            assert name in case.text, (case.id, name)
        for rel in case.gold.relationships:
            assert rel.source in names and rel.target in names


def test_roles_types_and_relation_labels(synthetic):
    for s in synthetic:
        sources = {r.source for r in s.case.gold.relationships}
        for entity in s.case.gold.entities:
            assert entity.role == ("subject" if entity.name in sources else "object")
            assert entity.type
        for rel in s.case.gold.relationships:
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", rel.relation)


def test_every_relationship_count_from_zero_to_six_occurs(synthetic):
    counts = Counter(len(s.case.gold.relationships) for s in synthetic)
    assert set(counts) == set(range(MAX_RELATIONSHIPS + 1))


def test_domains_and_kinds_of_sentences_all_occur(synthetic):
    assert {s.domain for s in synthetic} == {d.name for d in DOMAINS}
    tags = Counter(t for s in synthetic for t in s.case.tags)
    for tag in ("negation", "list", "distractor", "long"):
        assert tags[tag] > 0, tag
    assert any("\n\n" in s.case.text for s in synthetic)
    assert {s.case.difficulty for s in synthetic} == {"simple", "medium", "complex", "adversarial"}


def test_negated_pairs_are_entities_without_a_relationship(synthetic):
    negated = [s for s in synthetic if s.negated]
    assert len(negated) > 50
    for s in negated:
        names = {e.name for e in s.case.gold.entities}
        pairs = {frozenset((r.source, r.target)) for r in s.case.gold.relationships}
        for source, target in s.negated:
            assert source in names and target in names
            assert frozenset((source, target)) not in pairs


def test_distractors_are_entities_in_no_relationship(synthetic):
    with_distractors = [s for s in synthetic if "distractor" in s.case.tags]
    assert with_distractors
    lonely = 0
    for s in with_distractors:
        ends = {n for r in s.case.gold.relationships for n in (r.source, r.target)}
        negated = {n for pair in s.negated for n in pair}
        lonely += sum(1 for e in s.case.gold.entities if e.name not in ends | negated)
    assert lonely >= len(with_distractors)


def test_targets_are_valid_against_the_eval_set_schema(synthetic, evalset):
    validator = Draft202012Validator(evalset.schema)
    for s in synthetic:
        errors = list(validator.iter_errors(s.case.gold.model_dump(exclude_none=True)))
        assert not errors, (s.case.id, errors[0].message)


def test_a_name_has_one_type_across_domains():
    types: dict[str, set[str]] = {}
    for domain in DOMAINS:
        for etype, names in domain.entities.items():
            for name in names:
                types.setdefault(name, set()).add(etype)
    assert {n: t for n, t in types.items() if len(t) > 1} == {}


def test_generate_renders_examples_with_the_prompt(evalset):
    examples = generate(20, seed=5, prompt=evalset.prompt)
    cases = generate_synthetic(20, seed=5)
    assert len(examples) == 20
    for example, s in zip(examples, cases, strict=True):
        assert example.text == s.case.text
        assert [m.role for m in example.messages] == ["system", "user", "assistant"]
        assert example.messages[0].content == evalset.prompt.system
        assert s.case.text in example.messages[1].content
        assert json.loads(example.answer) == s.case.gold.model_dump(exclude_none=True)
        gold = s.case.gold.model_dump(exclude_none=True)
        assert example.answer == json.dumps(gold, ensure_ascii=False, separators=(",", ":"))
