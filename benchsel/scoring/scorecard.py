"""Scoring a system's replies on an eval set: per reply, then micro/macro totals with intervals,
in the as-is view (what you would deploy today) and the content view (what the model understood)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from benchsel.evalset import DIFFICULTIES, Case, EvalSet
from benchsel.gcpause import gc_paused
from benchsel.scoring.fastschema import Check, compile_schema
from benchsel.scoring.match import (
    Counts,
    CountsByKey,
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


FORMAT_DEBT_MIN_CONTENT_F1 = 0.5
"""Format debt is claimed only where the content view is good: content entity F1 at least this.
Below it there is little understanding for valid JSON to unlock (docs/selection.md)."""
FORMAT_DEBT_MIN_GAP = 0.05
"""... and the as-is view is not: as-is entity F1 at least this much below the content view."""


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
    """Every scored reply, unless scoring was asked not to keep them (a large stream)."""
    cases: int = 0
    """Distinct cases with at least one scored reply."""

    @property
    def format_debt(self) -> float:
        """Entity F1 the model understood but did not deliver as valid JSON: what LoRA fixes cheaply."""
        return self.content.entities.f1.value - self.as_is.entities.f1.value

    @property
    def has_format_debt(self) -> bool:
        """The content view is good and the as-is view is not: the gap is format, which LoRA fixes
        cheaply. A model that understood little has no format debt to claim, whatever its JSON rate."""
        return (
            self.replies > 0
            and self.content.entities.f1.value >= FORMAT_DEBT_MIN_CONTENT_F1
            and self.format_debt >= FORMAT_DEBT_MIN_GAP
        )

    @property
    def relationship_format_debt(self) -> float:
        return self.content.relationships.f1.value - self.as_is.relationships.f1.value


# ---- one reply --------------------------------------------------------------------------------


class SchemaCheck:
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
def _check(schema_json: str) -> SchemaCheck:
    return SchemaCheck(schema_json)


def schema_check(schema: Mapping[str, Any] | SchemaCheck) -> SchemaCheck:
    """The check of ``schema``, made once per distinct schema (keyed by its JSON text); score() makes
    it once per call, so the text is not built per reply."""
    if isinstance(schema, SchemaCheck):
        return schema
    import json

    return _check(json.dumps(schema, sort_keys=True))


def schema_error(obj: Any, schema: Mapping[str, Any] | SchemaCheck) -> str | None:
    """The first reason ``obj`` breaks ``schema``, or None when it validates: a fast check for the
    common answer-schema keywords decides, jsonschema explains."""
    check = schema_check(schema)
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


def _view(gold: Extracted, pred: Extracted, symmetric: frozenset[str], strict: bool) -> ViewMatch:
    return ViewMatch(
        match_entities(gold, pred, strict=strict),
        match_relationships(gold, pred, symmetric=symmetric, strict=strict),
    )


def score_reply(
    case: Case,
    parsed: ParsedReply,
    *,
    schema: Mapping[str, Any] | SchemaCheck,
    symmetric: frozenset[str] = frozenset(),
    strict: bool = False,
    repeat: int = 0,
    gold: Extracted | None = None,
    no_answer: ViewMatch | None = None,
) -> ReplyScore:
    """One reply against its case. ``gold`` (the case's gold, extracted) and ``no_answer`` (the as-is view
    of a reply that is not JSON: everything missed) may be passed in when made once per case."""
    gold = gold if gold is not None else gold_of(case)
    content_pred = extract(parsed.recovered)
    content = _view(gold, content_pred, symmetric, strict)
    if parsed.strict is not None:
        as_is = content
    else:
        as_is = no_answer if no_answer is not None else _view(gold, _EMPTY, symmetric, strict)
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


def score(
    evalset: EvalSet,
    replies: Iterable[ReplyInput],
    *,
    strict: bool = False,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    keep_replies: bool = True,
) -> ModelScore:
    """Score one system's replies. Cases are the bootstrap unit: repeats of a case move together.
    ``replies`` may be a stream; with ``keep_replies=False`` no per-reply row is kept (``per_reply`` is
    empty) and memory is bounded by the number of cases, not of replies."""
    tally = Tally()
    # made once per case (and the schema's check once per call) rather than per reply
    golds: dict[str, Extracted] = {}
    no_answers: dict[str, ViewMatch] = {}
    check, symmetric = schema_check(evalset.schema), evalset.symmetric_relations
    with gc_paused():
        for reply in replies:
            if reply.error is not None:
                tally.errors += 1
                continue
            case = evalset.case(reply.case_id)
            gold = golds.get(case.id)
            if gold is None:
                gold = golds[case.id] = gold_of(case)
            parsed = parse_reply(reply.output)
            no_answer = None
            if parsed.strict is None:
                no_answer = no_answers.get(case.id)
                if no_answer is None:
                    no_answer = no_answers[case.id] = _view(gold, _EMPTY, symmetric, strict)
            scored = score_reply(
                case,
                parsed,
                schema=check,
                symmetric=symmetric,
                strict=strict,
                repeat=reply.repeat,
                gold=gold,
                no_answer=no_answer,
            )
            tally.add(scored, keep=keep_replies)
        return tally.result(seed=seed, resamples=resamples)


def total(counts: Iterable[Counts]) -> Counts:
    """Counts summed with plain integers (``sum`` of ``Counts`` builds one object per step)."""
    tp = fp = fn = 0
    for c in counts:
        tp, fp, fn = tp + c.tp, fp + c.fp, fn + c.fn
    return Counts(tp, fp, fn)


@dataclass
class _DifficultyTally:
    replies: int = 0
    strict: int = 0
    # "as_is_entities", "content_entities", "content_relationships": summed as integers, as adding
    # ``Counts`` would build three objects per reply
    counts: CountsByKey = field(default_factory=CountsByKey)


@dataclass
class Tally:
    """Running totals of scored replies: everything a ModelScore is computed from, per case (the
    bootstrap unit) rather than per reply, so a stream of replies needs memory for its cases only."""

    errors: int = 0
    replies: int = 0
    strict: int = 0
    schema: int = 0
    recovered: int = 0
    # per view ("as_is", "content") and kind ("entities", "relationships"): counts per case id
    per_case: dict[tuple[str, str], CountsByKey] = field(default_factory=dict)
    by_label: dict[str, CountsByKey] = field(default_factory=dict)
    difficulty: dict[str, _DifficultyTally] = field(default_factory=dict)
    kept: list[ReplyScore] = field(default_factory=list)

    def add(self, reply: ReplyScore, *, keep: bool = True) -> None:
        self.replies += 1
        self.strict += reply.strict_json
        self.schema += reply.schema_valid
        self.recovered += reply.recovered
        for view_name, view in (("as_is", reply.as_is), ("content", reply.content)):
            self._cases(view_name, "entities").add(reply.case_id, view.entities.counts)
            self._cases(view_name, "relationships").add(reply.case_id, view.relationships.counts)
            by_label = view.relationships.by_label
            if not by_label:  # no relationship predicted or expected
                continue
            labels = self.by_label.get(view_name)
            if labels is None:
                labels = self.by_label[view_name] = CountsByKey()
            for label, counts in by_label.items():
                labels.add(label, counts)
        d = self.difficulty.get(reply.difficulty)
        if d is None:
            d = self.difficulty[reply.difficulty] = _DifficultyTally()
        d.replies += 1
        d.strict += reply.strict_json
        d.counts.add("as_is_entities", reply.as_is.entities.counts)
        d.counts.add("content_entities", reply.content.entities.counts)
        d.counts.add("content_relationships", reply.content.relationships.counts)
        if keep:
            self.kept.append(reply)

    def _cases(self, view: str, kind: str) -> CountsByKey:
        cases = self.per_case.get((view, kind))
        if cases is None:
            cases = self.per_case[(view, kind)] = CountsByKey()
        return cases

    def result(self, *, seed: int = 0, resamples: int = DEFAULT_RESAMPLES) -> ModelScore:
        n = self.replies
        return ModelScore(
            replies=n,
            errors=self.errors,
            valid_json=wilson(self.strict, n),
            schema_valid=wilson(self.schema, n),
            recovered=wilson(self.recovered, n),
            as_is=self._view("as_is", seed, resamples),
            content=self._view("content", seed, resamples),
            by_difficulty=self._by_difficulty(),
            per_reply=tuple(self.kept),
            cases=len(self._cases("as_is", "entities")),
        )

    def _view(self, view: str, seed: int, resamples: int) -> ViewScore:
        entities = self._cases(view, "entities").counts()
        relationships = self._cases(view, "relationships").counts()
        labels = self.by_label[view].by_key() if view in self.by_label else {}
        return ViewScore(
            entities=_prf(entities, seed, resamples),
            relationships=_prf(relationships, seed + 1, resamples),
            relationship_macro_f1=macro_f1(labels),
        )

    def _by_difficulty(self) -> dict[str, DifficultyScore]:
        out = {}
        for difficulty in DIFFICULTIES:
            d = self.difficulty.get(difficulty)
            if d is None:
                continue
            counts = d.counts.by_key()
            out[difficulty] = DifficultyScore(
                replies=d.replies,
                valid_json=d.strict / d.replies,
                as_is_entity_f1=f1(counts["as_is_entities"]),
                content_entity_f1=f1(counts["content_entities"]),
                content_entity_recall=recall(counts["content_entities"]),
                content_relationship_f1=f1(counts["content_relationships"]),
            )
        return out


def _prf(per_case: list[Counts], seed: int, resamples: int) -> PRF:
    estimates = bootstrap_many(per_case, resamples=resamples, seed=seed)
    return PRF(estimates["precision"], estimates["recall"], estimates["f1"], total(per_case))
