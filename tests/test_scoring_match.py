"""benchsel.scoring.match: normalisation, extraction from an answer, entity and relationship matching."""

from __future__ import annotations

from typing import Any

import pytest

from benchsel.scoring.match import (
    Counts,
    extract,
    match_entities,
    match_relationships,
    normalize_name,
    normalize_relation,
)


def answer(entities: list[Any], relationships: list[Any] | None = None) -> dict[str, Any]:
    return {"entities": entities, "relationships": relationships or []}


def rel(source: str, relation: str, target: str) -> dict[str, str]:
    return {"source": source, "relation": relation, "target": target}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Docker", "docker"),
        ("  Kubernetes \n\t cluster  ", "kubernetes cluster"),
        ('"Docker"', "docker"),
        ("“Docker”.", "docker"),
        ("'DevOps team',", "devops team"),
        ("(Redis)", "redis"),
        ("the DevOps team", "devops team"),
        ("The DevOps Team", "devops team"),
        ("A load balancer", "load balancer"),
        ("an API gateway", "api gateway"),
        ('"The  Billing   Service"', "billing service"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("The", "the"),  # an article alone is a name, not a prefix
        ("Theano", "theano"),  # only a whole leading word is an article
        ("A/B testing", "a/b testing"),
        ("ｄｏｃｋｅｒ", "docker"),  # NFKC
        ("Node.js", "node.js"),  # inner punctuation stays
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DEPLOYED_ON", "DEPLOYED_ON"),
        ("deployed on", "DEPLOYED_ON"),
        ("deployedOn", "DEPLOYED_ON"),
        ("DeployedOn", "DEPLOYED_ON"),
        ("deployed-on", "DEPLOYED_ON"),
        ("  deployed   on  ", "DEPLOYED_ON"),
        ("Deployed_On", "DEPLOYED_ON"),
        ("works for", "WORKS_FOR"),
        ("Live_In", "LIVE_IN"),
        ("part-of/member", "PART_OF_MEMBER"),
        ("runsOn2Nodes", "RUNS_ON2_NODES"),
        ("läuft auf", "LÄUFT_AUF"),
        ("__weird__", "WEIRD"),
    ],
)
def test_normalize_relation(raw: str, expected: str) -> None:
    assert normalize_relation(raw) == expected


# ---- extract ------------------------------------------------------------------------------------


def test_extract_collapses_duplicates_and_keeps_order() -> None:
    got = extract(
        answer(
            [{"name": "Docker", "type": "Software"}, {"name": "the docker"}, {"name": "Redis"}],
            [
                rel("Docker", "runs on", "Redis"),
                rel("docker", "RUNS_ON", "redis"),
                rel("Redis", "x", "Docker"),
            ],
        )
    )
    assert got.entities == (("docker", "software"), ("redis", None))
    assert got.relationships == (("docker", "RUNS_ON", "redis"), ("redis", "X", "docker"))
    assert got.malformed == 0


def test_extract_tolerates_wrong_types_inside_the_object() -> None:
    got = extract(
        {
            "entities": [
                "Docker",  # a bare string is a name
                {"name": 42},  # a number is a name
                {"name": None},
                {"name": ["x"]},
                {"name": True},
                {"name": "   "},
                {"name": '""'},
                {"type": "software"},
                7.5,
                None,
                [],
            ],
            "relationships": [
                rel("Docker", "RUNS_ON", "42"),
                {"source": "Docker", "relation": 1, "target": "42"},
                {"source": "Docker", "relation": None, "target": "42"},
                {"source": "Docker", "target": "42"},
                {"source": "Docker", "relation": "???", "target": "42"},
                "Docker RUNS_ON 42",
                None,
            ],
        }
    )
    assert got.entities == (("docker", None), ("42", None), ("7.5", None))
    assert got.relationships == (("docker", "RUNS_ON", "42"), ("docker", "1", "42"))
    assert got.malformed == 8 + 5


@pytest.mark.parametrize(
    "obj",
    [None, [], "text", 3, {}, {"entities": "Docker", "relationships": {"a": 1}}, {"entities": None}],
)
def test_extract_of_something_without_the_answer_shape_is_empty(obj: Any) -> None:
    got = extract(obj)
    assert got.entities == () and got.relationships == ()


# ---- entities -----------------------------------------------------------------------------------


def test_entity_matching_normalises_names() -> None:
    gold = extract(answer([{"name": "Docker"}, {"name": "DevOps team"}, {"name": "Kubernetes cluster"}]))
    pred = extract(answer(['"docker"', "The DevOps  Team.", "Kubernetes", "Helm"]))
    result = match_entities(gold, pred)
    assert result.counts == Counts(tp=2, fp=2, fn=1)
    assert result.matched == ("docker", "devops team")
    assert result.invented == ("kubernetes", "helm")
    assert result.missed == ("kubernetes cluster",)


def test_each_gold_entity_matches_at_most_once() -> None:
    gold = extract(answer([{"name": "Docker"}]))
    pred = extract(answer(["Docker", "docker", "the Docker", '"DOCKER"']))
    assert match_entities(gold, pred).counts == Counts(tp=1, fp=0, fn=0)


def test_strict_mode_requires_entity_types() -> None:
    gold = extract(answer([{"name": "Docker", "type": "software"}, {"name": "Ops", "type": "team"}]))
    pred = extract(answer([{"name": "Docker", "type": "Software"}, {"name": "Ops", "type": "person"}]))
    assert match_entities(gold, pred).counts == Counts(tp=2, fp=0, fn=0)
    strict = match_entities(gold, pred, strict=True)
    assert strict.counts == Counts(tp=1, fp=1, fn=1)
    assert strict.invented == ("ops",) and strict.missed == ("ops",)


def test_strict_mode_accepts_any_type_where_gold_has_none() -> None:
    gold = extract(answer([{"name": "Docker"}]))
    pred = extract(answer([{"name": "Docker", "type": "software"}]))
    assert match_entities(gold, pred, strict=True).counts == Counts(tp=1)


def test_empty_sides() -> None:
    gold = extract(answer([{"name": "Docker"}]))
    none = extract(answer([]))
    assert match_entities(gold, none).counts == Counts(0, 0, 1)
    assert match_entities(none, gold).counts == Counts(0, 1, 0)
    assert match_entities(none, none).counts == Counts(0, 0, 0)


# ---- relationships ------------------------------------------------------------------------------


GOLD_RELS = extract(
    answer(
        [{"name": "Docker"}, {"name": "Kubernetes cluster"}, {"name": "DevOps team"}, {"name": "Acme"}],
        [
            rel("Docker", "DEPLOYED_ON", "Kubernetes cluster"),
            rel("DevOps team", "MANAGES", "Kubernetes cluster"),
            rel("Acme", "PARTNERS_WITH", "DevOps team"),
        ],
    )
)


def test_relationship_labels_are_normalised() -> None:
    pred = extract(
        answer(
            [],
            [
                rel("docker", "deployedOn", "the Kubernetes cluster"),
                rel("DevOps Team", "manages", "Kubernetes  cluster"),
                rel("Acme", "partners-with", "DevOps team"),
            ],
        )
    )
    result = match_relationships(GOLD_RELS, pred)
    assert result.counts == Counts(tp=3, fp=0, fn=0)
    assert result.matched[0] == "docker -DEPLOYED_ON-> kubernetes cluster"


def test_direction_matters_for_ordinary_relations() -> None:
    pred = extract(answer([], [rel("Kubernetes cluster", "DEPLOYED_ON", "Docker")]))
    result = match_relationships(GOLD_RELS, pred, symmetric={"PARTNERS_WITH"})
    assert result.counts == Counts(tp=0, fp=1, fn=3)
    assert result.invented == ("kubernetes cluster -DEPLOYED_ON-> docker",)


def test_direction_ignored_only_for_symmetric_relations() -> None:
    pred = extract(answer([], [rel("DevOps team", "partners with", "Acme")]))
    assert match_relationships(GOLD_RELS, pred).counts == Counts(tp=0, fp=1, fn=3)
    symmetric = match_relationships(GOLD_RELS, pred, symmetric={"PARTNERS_WITH"})
    assert symmetric.counts == Counts(tp=1, fp=0, fn=2)
    assert symmetric.matched == ("acme -PARTNERS_WITH-> devops team",)


def test_each_gold_relationship_matches_at_most_once() -> None:
    pred = extract(
        answer(
            [],
            [
                rel("Docker", "DEPLOYED_ON", "Kubernetes cluster"),
                rel("docker", "deployed on", "kubernetes cluster"),
                rel("DevOps team", "PARTNERS_WITH", "Acme"),
                rel("Acme", "PARTNERS_WITH", "DevOps team"),
            ],
        )
    )
    result = match_relationships(GOLD_RELS, pred, symmetric={"PARTNERS_WITH"})
    assert result.counts == Counts(tp=2, fp=0, fn=1)


def test_relationships_by_label() -> None:
    pred = extract(
        answer(
            [],
            [
                rel("Docker", "DEPLOYED_ON", "Kubernetes cluster"),
                rel("Docker", "DEPLOYED_ON", "Acme"),
                rel("Docker", "USES", "Acme"),
            ],
        )
    )
    result = match_relationships(GOLD_RELS, pred)
    assert dict(result.by_label) == {
        "DEPLOYED_ON": Counts(tp=1, fp=1, fn=0),
        "USES": Counts(tp=0, fp=1, fn=0),
        "MANAGES": Counts(tp=0, fp=0, fn=1),
        "PARTNERS_WITH": Counts(tp=0, fp=0, fn=1),
    }


def test_strict_relationships_require_both_end_types() -> None:
    gold = extract(
        answer(
            [{"name": "Docker", "type": "software"}, {"name": "Redis", "type": "database"}],
            [rel("Docker", "USES", "Redis")],
        )
    )
    right = extract(
        answer(
            [{"name": "Docker", "type": "software"}, {"name": "Redis", "type": "database"}],
            [rel("Docker", "USES", "Redis")],
        )
    )
    wrong = extract(
        answer(
            [{"name": "Docker", "type": "software"}, {"name": "Redis", "type": "cache"}],
            [rel("Docker", "USES", "Redis")],
        )
    )
    untyped = extract(answer([], [rel("Docker", "USES", "Redis")]))
    assert match_relationships(gold, right, strict=True).counts == Counts(1, 0, 0)
    assert match_relationships(gold, wrong, strict=True).counts == Counts(0, 1, 1)
    assert match_relationships(gold, untyped, strict=True).counts == Counts(0, 1, 1)
    assert match_relationships(gold, wrong).counts == Counts(1, 0, 0)


def test_counts_add() -> None:
    assert Counts(1, 2, 3) + Counts(4, 5, 6) == Counts(5, 7, 9)
    assert sum([Counts(1, 0, 0), Counts(0, 1, 0)], Counts()) == Counts(1, 1, 0)
