"""What the report shows of a selection: the cards, both rankings with reasons, the exclusions and the
VRAM figures. Built from ``benchsel.selection.Selection``; without one, only what the run measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from benchsel.hardware import format_bytes
from benchsel.report.view import NA, best, fmt_score, fmt_tps
from benchsel.summary import RunSummary

if TYPE_CHECKING:
    from benchsel.probe import MeasuredRanking
    from benchsel.selection import Entry, Ranking, RankingName, Selection


@dataclass(frozen=True)
class Card:
    title: str
    value: str
    detail: str


@dataclass(frozen=True)
class RankingView:
    title: str
    description: str
    rows: tuple[tuple[str, str, str, str], ...]
    """(rank, model, score, why)"""


@dataclass(frozen=True)
class VramBar:
    model: str
    estimated_bytes: int | None
    measured_bytes: int | None


@dataclass(frozen=True)
class MeasuredPoint:
    """One probed model: what trainable potential predicted against what the probe measured."""

    model: str
    predicted: float
    measured: float
    low: float
    high: float


@dataclass(frozen=True)
class SelectionView:
    cards: tuple[Card, ...]
    rankings: tuple[RankingView, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    vram_headers: tuple[str, ...] = ()
    vram_rows: tuple[tuple[str, ...], ...] = ()
    vram: tuple[VramBar, ...] = ()
    budget_bytes: int | None = None
    reserve_bytes: int | None = None
    margin_bytes: int | None = None
    constraints: str = ""
    notes: tuple[str, ...] = ()
    measured: tuple[MeasuredPoint, ...] = ()


def measured_vram(summary: RunSummary) -> tuple[VramBar, ...]:
    """Per model the VRAM the server reported while it was loaded (no estimate without a selection);
    a figure measured on the CPU is RAM and is not drawn as VRAM."""
    bars = []
    for m in summary.models:
        measured = m.memory.vram_bytes_measured if m.memory is not None else None
        bars.append(VramBar(m.name, None, measured))
    return tuple(bars)


def fallback_cards(summary: RunSummary) -> tuple[Card, ...]:
    """Cards for a report without a selection: the best measured figures, no constraints applied."""
    models = summary.models
    as_is = best(models, lambda m: m.score.as_is.entities.f1.value)
    content = best(models, lambda m: m.score.content.entities.recall.value)
    fastest = best(models, lambda m: m.speed.decode_tokens_per_s)
    return (
        Card(
            "Best content entity recall",
            content.name if content else NA,
            f"recall {fmt_score(content.score.content.entities.recall.value)}, no constraints applied"
            if content
            else "no scored replies",
        ),
        Card(
            "Best as-is entity F1",
            as_is.name if as_is else NA,
            f"F1 {fmt_score(as_is.score.as_is.entities.f1.value)}, no constraints applied"
            if as_is
            else "no scored replies",
        ),
        Card(
            "Fastest decode",
            fastest.name if fastest else NA,
            fmt_tps(fastest.speed.decode_tokens_per_s) if fastest else "no server timings",
        ),
    )


def selection_view(summary: RunSummary, selection: Selection | None) -> SelectionView | None:
    if selection is None:
        return None
    return from_selection(selection)


RANKING_TEXT = {
    "trainable_potential": (
        "Trainable potential",
        "Which base to fine-tune: content quality, weighted towards what a LoRA cannot cheaply teach; "
        "JSON validity, schema compliance and thinking leaks weigh little.",
    ),
    "deploy_now": ("Deploy now", "Which model to use as it is today: as-is quality and valid JSON."),
}


def _weights_text(selection: Selection, name: RankingName) -> str:
    weights = selection.weights.of_ranking(name)
    return "Weights: " + ", ".join(f"{key} {value:g}" for key, value in weights.items()) + "."


def _ranking(selection: Selection, ranking: Ranking) -> RankingView:
    title, description = RANKING_TEXT[ranking.name]
    rows = tuple(
        (str(e.rank) if e.rank else "-", e.label, f"{e.score:.3f}", e.reason) for e in ranking.entries
    ) + tuple(("-", f.label, NA, f.failure) for f in selection.failed)
    return RankingView(title, f"{description} {_weights_text(selection, ranking.name)}", rows)


METRIC_LABELS = {"content_entity_recall": "content entity recall", "as_is_entity_f1": "as-is entity F1"}


def _winner_card(title: str, ranking: Ranking, keys: tuple[str, str]) -> Card:
    entry = ranking.winner
    if entry is None:
        return Card(title, "none", ranking.no_winner or "no winner")
    recall_key, valid_key = keys
    label = METRIC_LABELS.get(recall_key, recall_key)
    detail = f"{label} {entry.metrics[recall_key]:.2f}, {entry.metrics[valid_key] * 100:.0f}% valid JSON"
    return Card(title, entry.label, f"score {entry.score:.3f}; {detail}")


def _budget_card(selection: Selection) -> Card:
    c = selection.constraints
    deploy, train = selection.deploy_winner, selection.train_winner
    if c.vram_bytes is None or c.available_bytes is None:
        return Card("Budget used", "not checked", "pass --vram (and --reserve) to check the fit")
    budget = f"{format_bytes(c.vram_bytes)} - {format_bytes(c.reserve_bytes)} reserve"
    if deploy is None or deploy.vram is None:
        return Card("Budget used", f"{format_bytes(c.available_bytes)} available", budget)
    needed = deploy.vram.bytes_needed
    detail = f"{deploy.model} ({deploy.vram.label}) in {budget}"
    if train is not None and train.vram is not None and train.model != deploy.model:
        detail += f"; {train.model} needs {format_bytes(train.vram.bytes_needed)} ({train.vram.label})"
    share = needed / c.available_bytes * 100
    return Card(
        "Budget used", f"{format_bytes(needed)} of {format_bytes(c.available_bytes)} ({share:.0f}%)", detail
    )


def _size(n: int | None) -> str:
    return NA if n is None else format_bytes(n)


def _fit(entry: Entry, checked: bool) -> str:
    if entry.vram is None:
        return "unknown"
    if not checked or entry.headroom_bytes is None:
        return "not checked"
    return "yes" if entry.headroom_bytes >= 0 else "no"


def _vram_rows(selection: Selection) -> tuple[tuple[str, ...], ...]:
    checked = selection.constraints.vram_bytes is not None
    rows = []
    for e in selection.deploy_now.entries:
        v = e.vram
        rows.append(
            (
                e.label,
                _size(v.bytes_needed if v else None),
                v.label if v else "unknown",
                _size(v.estimated_bytes if v else None),
                _size(v.measured_bytes if v else None),
                _size(e.headroom_bytes),
                _fit(e, checked),
            )
        )
    return tuple(rows)


def _excluded(selection: Selection) -> tuple[tuple[str, str], ...]:
    reasons: dict[str, list[str]] = {}
    for ranking in (selection.deploy_now, selection.trainable):
        for e in ranking.entries:
            for why in e.exclusions:
                if why not in reasons.setdefault(e.label, []):
                    reasons[e.label].append(why)
    return tuple((model, "; ".join(why)) for model, why in reasons.items() if why)


def constraints_text(selection: Selection) -> str:
    return selection.constraints.describe() + "."


def from_selection(selection: Selection) -> SelectionView:
    c = selection.constraints
    notes = [
        f"Close call ({RANKING_TEXT[r.name][0].lower()}): {r.close_call.text()}."
        for r in (selection.trainable, selection.deploy_now)
        if r.close_call is not None
    ]
    if c.vram_bytes is None:
        notes.append("VRAM was not checked: pass --vram to exclude models that do not fit.")
    rankings: tuple[RankingView, ...] = (
        _ranking(selection, selection.trainable),
        _ranking(selection, selection.deploy_now),
    )
    if selection.measured is not None:
        rankings += (_measured_ranking(cast("MeasuredRanking", selection.measured)),)
    return SelectionView(
        cards=(
            _winner_card(
                "Winner for fine-tuning", selection.trainable, ("content_entity_recall", "valid_json")
            ),
            _winner_card(
                "Winner to deploy now", selection.deploy_now, ("as_is_entity_f1", "as_is_valid_json")
            ),
            _budget_card(selection),
        ),
        rankings=rankings,
        excluded=_excluded(selection),
        vram_headers=("Model", "Needed", "Source", "Estimated", "Measured", "Headroom", "Fits"),
        vram_rows=_vram_rows(selection),
        vram=tuple(
            VramBar(
                e.label, e.vram.estimated_bytes if e.vram else None, e.vram.measured_bytes if e.vram else None
            )
            for e in selection.deploy_now.entries
        ),
        budget_bytes=c.vram_bytes,
        reserve_bytes=c.reserve_bytes,
        margin_bytes=c.margin_bytes,
        constraints=constraints_text(selection),
        notes=tuple(notes),
        measured=_measured_points(cast("MeasuredRanking | None", selection.measured)),
    )


def _measured_ranking(measured: MeasuredRanking) -> RankingView:
    rows = tuple(
        (str(e.rank) if e.rank else "-", e.model, f"{e.score:.3f}", e.reason) for e in measured.entries
    )
    description = (
        f"Which base gained most when measured: {measured.description}, then as-is entity F1 on "
        f"{len(measured.split.get('probe', []))} probe cases the final verdict never uses "
        f"(probe {measured.probe_id})."
    )
    return RankingView("Measured trainability", description, rows)


def _measured_points(measured: MeasuredRanking | None) -> tuple[MeasuredPoint, ...]:
    if measured is None:
        return ()
    return tuple(
        MeasuredPoint(
            e.model, e.predicted, e.figures.probed.value, e.figures.probed.low, e.figures.probed.high
        )
        for e in measured.entries
        if e.predicted is not None and e.figures.probed is not None
    )
