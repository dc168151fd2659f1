"""Normalised matching of predicted entities and relationships against gold ("boundaries" setting)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_SPACE = re.compile(r"\s+")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_EDGE_PUNCT = "\"'`“”‘’«».,;:!?()[]{}<>*_"
_NON_WORD = re.compile(r"[\W_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_name(name: str) -> str:
    """Casefold, collapse whitespace, strip surrounding quotes/punctuation and a leading article."""
    text = unicodedata.normalize("NFKC", name)
    text = _SPACE.sub(" ", text).strip().strip(_EDGE_PUNCT).strip()
    text = _ARTICLE.sub("", text).strip(_EDGE_PUNCT).strip()
    return text.casefold()


def normalize_relation(label: str) -> str:
    """``deployed on``, ``deployedOn``, ``deployed-on`` -> ``DEPLOYED_ON``."""
    text = unicodedata.normalize("NFKC", label).strip()
    text = _CAMEL.sub("_", text)
    return _NON_WORD.sub("_", text).strip("_").upper()


EntityKey = tuple[str, str | None]
RelationKey = tuple[str, str, str]


@dataclass(frozen=True)
class Extracted:
    """Entities and relationships in normalised form, duplicates collapsed, order kept."""

    entities: tuple[EntityKey, ...] = ()
    relationships: tuple[RelationKey, ...] = ()
    entity_types: Mapping[str, str | None] = field(default_factory=dict)
    # how many items had to be ignored because they were not of the expected shape
    malformed: int = 0


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def extract(obj: Any) -> Extracted:
    """Read the answer shape from a parsed object, tolerating wrong types inside it."""
    if not isinstance(obj, Mapping):
        return Extracted()
    entities: dict[str, str | None] = {}
    malformed = 0
    raw_entities = obj.get("entities")
    for item in raw_entities if isinstance(raw_entities, list) else []:
        raw_name = _text(item.get("name")) if isinstance(item, Mapping) else _text(item)
        if raw_name is None or not normalize_name(raw_name):
            malformed += 1
            continue
        raw_type = _text(item.get("type")) if isinstance(item, Mapping) else None
        entities.setdefault(normalize_name(raw_name), raw_type.casefold().strip() if raw_type else None)
    relationships: dict[RelationKey, None] = {}
    raw_rels = obj.get("relationships")
    for item in raw_rels if isinstance(raw_rels, list) else []:
        if not isinstance(item, Mapping):
            malformed += 1
            continue
        parts = [_text(item.get(key)) for key in ("source", "relation", "target")]
        if any(p is None for p in parts):
            malformed += 1
            continue
        source, relation, target = (p or "" for p in parts)
        key = (normalize_name(source), normalize_relation(relation), normalize_name(target))
        if all(key):
            relationships.setdefault(key, None)
        else:
            malformed += 1
    return Extracted(
        entities=tuple((name, kind) for name, kind in entities.items()),
        relationships=tuple(relationships),
        entity_types=entities,
        malformed=malformed,
    )


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True)
class MatchResult:
    """Counts plus the items themselves, for the per-case drill-down."""

    counts: Counts
    matched: tuple[str, ...]
    missed: tuple[str, ...]
    invented: tuple[str, ...]
    # per relation label (relationships only): label -> Counts
    by_label: Mapping[str, Counts] = field(default_factory=dict)


def _same_type(gold_type: str | None, predicted_type: str | None) -> bool:
    """Strict mode's type check; a gold entity without a type accepts any predicted type."""
    return gold_type is None or gold_type == predicted_type


def match_entities(gold: Extracted, predicted: Extracted, *, strict: bool = False) -> MatchResult:
    """Predicted names are already unique (``extract`` collapses duplicates), so each gold name
    matches at most once. ``strict`` also requires the entity type to match."""
    gold_types = dict(gold.entities)
    matched: list[str] = []
    invented: list[str] = []
    for name, kind in predicted.entities:
        ok = name in gold_types and (not strict or _same_type(gold_types[name], kind))
        (matched if ok else invented).append(name)
    found = set(matched)
    missed = [name for name, _ in gold.entities if name not in found]
    counts = Counts(len(matched), len(invented), len(missed))
    return MatchResult(counts, tuple(matched), tuple(missed), tuple(invented))


def _canonical(rel: RelationKey, symmetric: frozenset[str]) -> RelationKey:
    source, relation, target = rel
    if relation in symmetric and target < source:
        return (target, relation, source)
    return rel


def _render(rel: RelationKey) -> str:
    return f"{rel[0]} -{rel[1]}-> {rel[2]}"


def match_relationships(
    gold: Extracted,
    predicted: Extracted,
    *,
    symmetric: Iterable[str] = (),
    strict: bool = False,
) -> MatchResult:
    """A prediction is correct when (head, RELATION, tail) equals a gold one; each gold matches once.
    Symmetric relations ignore direction. ``strict`` also requires both ends' entity types to match."""
    sym = frozenset(symmetric)
    gold_keys = {_canonical(r, sym): r for r in gold.relationships}
    remaining = dict(gold_keys)
    matched: list[RelationKey] = []
    invented: list[RelationKey] = []
    seen: set[RelationKey] = set()
    for rel in predicted.relationships:
        key = _canonical(rel, sym)
        if key in seen:
            continue
        seen.add(key)
        ok = key in remaining
        if ok and strict:
            ok = all(
                _same_type(gold.entity_types.get(end), predicted.entity_types.get(end))
                for end in (rel[0], rel[2])
            )
        if ok:
            matched.append(remaining.pop(key))
        else:
            invented.append(rel)
    missed = list(remaining.values())
    by_label: dict[str, Counts] = {}
    for items, field_name in ((matched, "tp"), (invented, "fp"), (missed, "fn")):
        for rel in items:
            current = by_label.get(rel[1], Counts())
            by_label[rel[1]] = Counts(**{**current.__dict__, field_name: getattr(current, field_name) + 1})
    return MatchResult(
        Counts(len(matched), len(invented), len(missed)),
        tuple(_render(r) for r in matched),
        tuple(_render(r) for r in missed),
        tuple(_render(r) for r in invented),
        by_label,
    )
