"""Normalised matching of predicted entities and relationships against gold ("boundaries" setting)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchsel.normalize import normalize_name, normalize_relation

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


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the exact check first: ABCs are slow


def _text(value: Any) -> str | None:
    if type(value) is str or isinstance(value, str):  # the exact check first: most values are str
        return value if value and not value.isspace() else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def extract(obj: Any) -> Extracted:
    """Read the answer shape from a parsed object, tolerating wrong types inside it."""
    if not _is_mapping(obj):
        return Extracted()
    entities, bad_entities = _entities(obj.get("entities"))
    relationships, bad_relationships = _relationships(obj.get("relationships"))
    return Extracted(
        entities=tuple(entities.items()),
        relationships=tuple(relationships),
        entity_types=entities,
        malformed=bad_entities + bad_relationships,
    )


def _entities(raw: Any) -> tuple[dict[str, str | None], int]:
    entities: dict[str, str | None] = {}
    malformed = 0
    for item in raw if isinstance(raw, list) else ():
        is_mapping = _is_mapping(item)
        raw_name = item.get("name") if is_mapping else item
        if type(raw_name) is not str:  # the common case, a plain string, skips the call
            raw_name = _text(raw_name)
        name = normalize_name(raw_name) if raw_name is not None else ""
        if not name:
            malformed += 1
            continue
        if name not in entities:
            raw_type = _text(item.get("type")) if is_mapping else None
            entities[name] = raw_type.casefold().strip() if raw_type else None
    return entities, malformed


def _relationships(raw: Any) -> tuple[dict[RelationKey, None], int]:
    relationships: dict[RelationKey, None] = {}
    malformed = 0
    for item in raw if isinstance(raw, list) else ():
        if not _is_mapping(item):
            malformed += 1
            continue
        source, relation = _text(item.get("source")), _text(item.get("relation"))
        target = _text(item.get("target"))
        if source is None or relation is None or target is None:
            malformed += 1
            continue
        key = (normalize_name(source), normalize_relation(relation), normalize_name(target))
        if key[0] and key[1] and key[2]:
            relationships.setdefault(key, None)
        else:
            malformed += 1
    return relationships, malformed


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


class CountsByKey:
    """Counts summed per key (a case id, a relation label), in first-seen order: the one per-case
    aggregation. Rows are plain integers, as adding ``Counts`` would build an object per reply."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[str, list[int]] = {}

    def add(self, key: str, c: Counts) -> None:
        row = self._rows.get(key)
        if row is None:
            self._rows[key] = [c.tp, c.fp, c.fn]
        else:
            row[0] += c.tp
            row[1] += c.fp
            row[2] += c.fn

    def __len__(self) -> int:
        return len(self._rows)

    def counts(self) -> list[Counts]:
        return [Counts(*row) for row in self._rows.values()]

    def by_key(self) -> dict[str, Counts]:
        return {key: Counts(*row) for key, row in self._rows.items()}


@dataclass(frozen=True)
class MatchResult:
    """Counts plus the items themselves, for the per-case drill-down. Items are entity names or
    (source, RELATION, target) keys; the ``matched``/``missed``/``invented`` strings are rendered only
    when a report asks for them (scoring thousands of replies never does)."""

    counts: Counts
    matched_items: tuple[str | RelationKey, ...]
    missed_items: tuple[str | RelationKey, ...]
    invented_items: tuple[str | RelationKey, ...]
    # per relation label (relationships only): label -> Counts
    by_label: Mapping[str, Counts] = field(default_factory=dict)

    @property
    def matched(self) -> tuple[str, ...]:
        return _rendered(self.matched_items)

    @property
    def missed(self) -> tuple[str, ...]:
        return _rendered(self.missed_items)

    @property
    def invented(self) -> tuple[str, ...]:
        return _rendered(self.invented_items)


def _rendered(items: tuple[str | RelationKey, ...]) -> tuple[str, ...]:
    if not items:  # most lists are empty; a list comprehension beats a generator (export of 10,000 rows)
        return ()
    return tuple([item if type(item) is str else f"{item[0]} -{item[1]}-> {item[2]}" for item in items])


def _same_type(gold_type: str | None, predicted_type: str | None) -> bool:
    """Strict mode's type check; a gold entity without a type accepts any predicted type."""
    return gold_type is None or gold_type == predicted_type


def match_entities(gold: Extracted, predicted: Extracted, *, strict: bool = False) -> MatchResult:
    """Predicted names are already unique (``extract`` collapses duplicates), so each gold name
    matches at most once. ``strict`` also requires the entity type to match."""
    gold_types = gold.entity_types
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
    remaining = {_canonical(r, sym) if sym else r: r for r in gold.relationships}
    matched: list[RelationKey] = []
    invented: list[RelationKey] = []
    seen: set[RelationKey] = set()
    for rel in predicted.relationships:
        key = _canonical(rel, sym) if sym else rel
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
    tallies: dict[str, list[int]] = {}
    for column, items in enumerate((matched, invented, missed)):
        for rel in items:
            tallies.setdefault(rel[1], [0, 0, 0])[column] += 1
    by_label = {label: Counts(*tally) for label, tally in tallies.items()}
    return MatchResult(
        Counts(len(matched), len(invented), len(missed)),
        tuple(matched),
        tuple(missed),
        tuple(invented),
        by_label,
    )
