"""Per-case detail for the HTML drill-down: the text, the gold, and every model's raw and parsed reply
with what matched, what was missed and what was invented."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchsel.report.view import cases_run
from benchsel.scoring.match import MatchResult
from benchsel.scoring.scorecard import ReplyScore
from benchsel.store import StoredResult
from benchsel.summary import RunSummary


@dataclass(frozen=True)
class Matches:
    matched: tuple[str, ...]
    missed: tuple[str, ...]
    invented: tuple[str, ...]

    @classmethod
    def of(cls, result: MatchResult) -> Matches:
        return cls(result.matched, result.missed, result.invented)


@dataclass(frozen=True)
class ModelReply:
    model: str
    repeat: int
    raw: str
    thinking: str
    status: str
    """A short line: strict JSON / recovered (fence) / no JSON / transport error."""
    parsed: str | None
    """The recovered answer, pretty-printed; None when it is the raw reply itself or nothing."""
    schema_error: str | None
    entity_f1: float | None
    entities: Matches | None
    relationships: Matches | None
    truncated: bool


@dataclass(frozen=True)
class CaseDetail:
    case_id: str
    difficulty: str
    text: str
    gold: str
    replies: tuple[ModelReply, ...]


def _pretty(obj: Any) -> str:
    # no indent: the C encoder is many times faster, and <pre> wraps the line
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def _status(score: ReplyScore) -> str:
    if score.strict_json:
        return "valid JSON" + ("" if score.schema_valid else ", breaks the schema")
    if score.recovered:
        return f"not valid JSON as it stands; recovered ({score.recovery})"
    return "no JSON found"


def _reply(model: str, stored: StoredResult, score: ReplyScore | None) -> ModelReply:
    reply = stored.reply
    raw = reply.content if reply else ""
    thinking = reply.thinking if reply else ""
    if score is None:
        kind = stored.error_kind or "unscored"
        message = f": {stored.error_message}" if stored.error_message else ""
        return ModelReply(
            model,
            stored.repeat,
            raw,
            thinking,
            f"transport error ({kind}){message}",
            None,
            None,
            None,
            None,
            None,
            bool(reply and reply.truncated),
        )
    parsed = _pretty(score.answer) if score.answer is not None and not score.strict_json else None
    return ModelReply(
        model=model,
        repeat=stored.repeat,
        raw=raw,
        thinking=thinking,
        status=_status(score),
        parsed=parsed,
        schema_error=score.schema_error if score.strict_json else None,
        entity_f1=score.content_entity_f1,
        entities=Matches.of(score.content.entities),
        relationships=Matches.of(score.content.relationships),
        truncated=bool(reply and reply.truncated),
    )


def case_details(summary: RunSummary) -> list[CaseDetail]:
    per_model = []
    for m in summary.models:
        scores = {(r.case_id, r.repeat): r for r in m.score.per_reply}
        stored: dict[str, list[StoredResult]] = {}
        for result in m.results:
            stored.setdefault(result.case_id, []).append(result)
        per_model.append((m.name, scores, stored))
    details = []
    for case in cases_run(summary):  # a case never sent (--limit) has nothing to show
        replies = [
            _reply(name, result, scores.get((case.id, result.repeat)))
            for name, scores, stored in per_model
            for result in sorted(stored.get(case.id, []), key=lambda r: r.repeat)
        ]
        details.append(
            CaseDetail(
                case.id,
                case.difficulty,
                case.text,
                _pretty(case.gold.model_dump(exclude_none=True)),
                tuple(replies),
            )
        )
    return details
