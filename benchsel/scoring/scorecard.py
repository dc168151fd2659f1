"""Scoring a system's replies on an eval set: per reply, then micro/macro totals with intervals,
in the as-is view (what you would deploy today) and the content view (what the model understood)."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from benchsel.evalset import DIFFICULTIES, Case, EvalSet
from benchsel.scoring.fastschema import Check, compile_schema
from benchsel.scoring.match import (
    Counts,
    Extracted,
    MatchResult,
    extract,
    match_entities,
    match_relationships,
)
from benchsel.scoring.metrics import (
    DEFAULT_RESAMPLES,
    Estimate,
    bootstrap_many,
    f1,
    macro_f1,
    recall,
    wilson,
)
from benchsel.scoring.parse import ParsedReply, parse_reply

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


@dataclass(frozen=True)
class ReplyInput:
    """What the scorer needs of one reply. ``output`` is raw text or an already-parsed object;
    ``error`` marks a transport failure, which is counted apart and never scored as an answer."""

    case_id: str
    output: str | dict[str, Any] | None
    repeat: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ViewMatch:
    entities: MatchResult
    relationships: MatchResult


@dataclass(frozen=True)
class ReplyScore:
    case_id: str
    repeat: int
    difficulty: str
    strict_json: bool
    schema_valid: bool
    recovered: bool
    recovery: str
    schema_error: str | None
    as_is: ViewMatch
    content: ViewMatch
    answer: dict[str, Any] | None
    malformed_items: int

    @property
    def content_entity_f1(self) -> float:
        return f1(self.content.entities.counts)


@dataclass(frozen=True)
class PRF:
    precision: Estimate
    recall: Estimate
    f1: Estimate
    counts: Counts


@dataclass(frozen=True)
class ViewScore:
    """Micro P/R/F1 (with bootstrap intervals) for entities and relationships, macro F1 over labels."""

    entities: PRF
    relationships: PRF
    relationship_macro_f1: float


@dataclass(frozen=True)
class DifficultyScore:
    replies: int
    valid_json: float
    as_is_entity_f1: float
    content_entity_f1: float
    content_entity_recall: float
    content_relationship_f1: float


@dataclass(frozen=True)
class ModelScore:
    """Everything the scorer says about one system on one eval set."""

    replies: int
    errors: int
    valid_json: Estimate
    schema_valid: Estimate
    recovered: Estimate
    as_is: ViewScore
    content: ViewScore
    by_difficulty: Mapping[str, DifficultyScore]
    per_reply: tuple[ReplyScore, ...] = field(repr=False)

    @property
    def format_debt(self) -> float:
        """Entity F1 the model understood but did not deliver as valid JSON: what LoRA fixes cheaply."""
        return self.content.entities.f1.value - self.as_is.entities.f1.value

    @property
    def relationship_format_debt(self) -> float:
        return self.content.relationships.f1.value - self.as_is.relationships.f1.value


# ---- one reply --------------------------------------------------------------------------------


class _SchemaCheck:
    """A fast check generated for the common answer-schema keywords, and jsonschema (imported only
    when needed: a schema the fast check cannot read, or an answer to explain) for the rest."""

    def __init__(self, schema_json: str) -> None:
        import json

        self.schema = json.loads(schema_json)
        self.fast: Check | None = compile_schema(self.schema)
        self._validator: Validator | None = None

    @property
    def validator(self) -> Validator:
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.schema)
        return self._validator

    def is_valid(self, obj: Any) -> bool:
        return self.fast(obj) if self.fast is not None else self.validator.is_valid(obj)


@lru_cache(maxsize=16)
def _check(schema_json: str) -> _SchemaCheck:
    return _SchemaCheck(schema_json)


# id(schema) -> (the schema itself, kept alive so its id stays unique; its check)
_BY_ID: dict[int, tuple[Mapping[str, Any], _SchemaCheck]] = {}


def _checks(schema: Mapping[str, Any]) -> _SchemaCheck:
    cached = _BY_ID.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    import json

    check = _check(json.dumps(schema, sort_keys=True))
    if len(_BY_ID) >= 16:
        _BY_ID.clear()
    _BY_ID[id(schema)] = (schema, check)
    return check


def schema_error(obj: Any, schema: Mapping[str, Any]) -> str | None:
    """The first reason ``obj`` breaks ``schema``, or None when it validates. The schema is taken as
    fixed once seen: a fast check for the common answer-schema keywords decides, jsonschema explains."""
    check = _checks(schema)
    if check.is_valid(obj):
        return None
    error = next(iter(check.validator.iter_errors(obj)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}"[:300] if where else error.message[:300]


def gold_of(case: Case) -> Extracted:
    return extract(case.gold.model_dump())


_EMPTY = Extracted()


# (id(gold), symmetric, strict) -> (gold, kept alive so the id stays its own; the view of no answer)
_NOTHING: dict[tuple[int, frozenset[str], bool], tuple[Extracted, ViewMatch]] = {}


def _nothing_predicted(gold: Extracted, symmetric: frozenset[str], strict: bool) -> ViewMatch:
    """The as-is view of a reply that is not valid JSON: everything missed. Cached per gold."""
    key = (id(gold), symmetric, strict)
    cached = _NOTHING.get(key)
    if cached is not None and cached[0] is gold:
        return cached[1]
    view = _view(gold, _EMPTY, symmetric, strict)
    if len(_NOTHING) >= 4096:
        _NOTHING.clear()
    _NOTHING[key] = (gold, view)
    return view


def _view(gold: Extracted, pred: Extracted, symmetric: frozenset[str], strict: bool) -> ViewMatch:
    return ViewMatch(
        match_entities(gold, pred, strict=strict),
        match_relationships(gold, pred, symmetric=symmetric, strict=strict),
    )


def score_reply(
    case: Case,
    parsed: ParsedReply,
    *,
    schema: Mapping[str, Any],
    symmetric: frozenset[str] = frozenset(),
    strict: bool = False,
    repeat: int = 0,
    gold: Extracted | None = None,
) -> ReplyScore:
    gold = gold if gold is not None else gold_of(case)
    content_pred = extract(parsed.recovered)
    content = _view(gold, content_pred, symmetric, strict)
    as_is = content if parsed.strict is not None else _nothing_predicted(gold, symmetric, strict)
    error = schema_error(parsed.strict, schema) if parsed.strict is not None else "not valid JSON"
    return ReplyScore(
        case_id=case.id,
        repeat=repeat,
        difficulty=case.difficulty,
        strict_json=parsed.strict is not None,
        schema_valid=error is None,
        recovered=parsed.recovered is not None,
        recovery=parsed.recovery,
        schema_error=error,
        as_is=as_is,
        content=content,
        answer=parsed.recovered,
        malformed_items=content_pred.malformed,
    )


# ---- a whole system ---------------------------------------------------------------------------


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: scoring builds many small acyclic objects that all stay
    alive, and the collector's repeated passes over them took a quarter of a 10,000-reply score()."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score(
    evalset: EvalSet,
    replies: Iterable[ReplyInput],
    *,
    strict: bool = False,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> ModelScore:
    """Score one system's replies. Cases are the bootstrap unit: repeats of a case move together."""
    scored: list[ReplyScore] = []
    golds: dict[str, Extracted] = {}
    errors = 0
    schema, symmetric = evalset.schema, evalset.symmetric_relations
    with gc_paused():
        for reply in replies:
            if reply.error is not None:
                errors += 1
                continue
            case = evalset.case(reply.case_id)
            gold = golds.get(case.id)
            if gold is None:
                gold = golds[case.id] = gold_of(case)
            scored.append(
                score_reply(
                    case,
                    parse_reply(reply.output),
                    schema=schema,
                    symmetric=symmetric,
                    strict=strict,
                    repeat=reply.repeat,
                    gold=gold,
                )
            )
        return summarize(scored, errors=errors, seed=seed, resamples=resamples)


def summarize(
    scored: Sequence[ReplyScore], *, errors: int = 0, seed: int = 0, resamples: int = DEFAULT_RESAMPLES
) -> ModelScore:
    n = len(scored)
    return ModelScore(
        replies=n,
        errors=errors,
        valid_json=wilson(sum(r.strict_json for r in scored), n),
        schema_valid=wilson(sum(r.schema_valid for r in scored), n),
        recovered=wilson(sum(r.recovered for r in scored), n),
        as_is=_view_score([r.as_is for r in scored], [r.case_id for r in scored], seed, resamples),
        content=_view_score([r.content for r in scored], [r.case_id for r in scored], seed, resamples),
        by_difficulty=_by_difficulty(scored),
        per_reply=tuple(scored),
    )


def total(counts: Iterable[Counts]) -> Counts:
    """Counts summed with plain integers (``sum`` of ``Counts`` builds one object per step)."""
    tp = fp = fn = 0
    for c in counts:
        tp, fp, fn = tp + c.tp, fp + c.fp, fn + c.fn
    return Counts(tp, fp, fn)


def _grouped_total(pairs: Iterable[tuple[str, Counts]]) -> dict[str, Counts]:
    sums: dict[str, list[int]] = {}
    for key, c in pairs:
        row = sums.get(key)
        if row is None:
            sums[key] = [c.tp, c.fp, c.fn]
        else:
            row[0] += c.tp
            row[1] += c.fp
            row[2] += c.fn
    return {key: Counts(*row) for key, row in sums.items()}


def _per_case(views: Sequence[ViewMatch], case_ids: Sequence[str]) -> tuple[list[Counts], list[Counts]]:
    pairs = list(zip(case_ids, views, strict=True))
    entities = _grouped_total((case_id, view.entities.counts) for case_id, view in pairs)
    relationships = _grouped_total((case_id, view.relationships.counts) for case_id, view in pairs)
    return list(entities.values()), list(relationships.values())


def _view_score(views: Sequence[ViewMatch], case_ids: Sequence[str], seed: int, resamples: int) -> ViewScore:
    entity_cases, relationship_cases = _per_case(views, case_ids)
    by_label = _grouped_total(item for view in views for item in view.relationships.by_label.items())
    return ViewScore(
        entities=_prf(entity_cases, seed, resamples),
        relationships=_prf(relationship_cases, seed + 1, resamples),
        relationship_macro_f1=macro_f1(by_label),
    )


def _prf(per_case: list[Counts], seed: int, resamples: int) -> PRF:
    estimates = bootstrap_many(per_case, resamples=resamples, seed=seed)
    return PRF(estimates["precision"], estimates["recall"], estimates["f1"], total(per_case))


def _by_difficulty(scored: Sequence[ReplyScore]) -> dict[str, DifficultyScore]:
    groups: dict[str, list[ReplyScore]] = defaultdict(list)
    for reply in scored:
        groups[reply.difficulty].append(reply)
    out = {}
    for difficulty in DIFFICULTIES:
        group = groups.get(difficulty)
        if not group:
            continue
        content_entities = total(r.content.entities.counts for r in group)
        out[difficulty] = DifficultyScore(
            replies=len(group),
            valid_json=sum(r.strict_json for r in group) / len(group),
            as_is_entity_f1=f1(total(r.as_is.entities.counts for r in group)),
            content_entity_f1=f1(content_entities),
            content_entity_recall=recall(content_entities),
            content_relationship_f1=f1(total(r.content.relationships.counts for r in group)),
        )
    return out
