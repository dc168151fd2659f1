"""What the report shows of a selection: the cards, both rankings with reasons, the exclusions and the
VRAM figures. Built from ``benchsel.selection.Selection``; without one, only what the run measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchsel.hardware import format_bytes
from benchsel.report.view import NA, best, fmt_score, fmt_tps
from benchsel.summary import RunSummary

if TYPE_CHECKING:
    from benchsel.selection import Selection


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
class SelectionView:
    cards: tuple[Card, ...]
    rankings: tuple[RankingView, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    vram_headers: tuple[str, ...] = ()
    vram_rows: tuple[tuple[str, ...], ...] = ()
    vram: tuple[VramBar, ...] = ()
    budget_bytes: int | None = None
    reserve_bytes: int | None = None
    constraints: str = ""
    notes: tuple[str, ...] = ()


def measured_vram(summary: RunSummary) -> tuple[VramBar, ...]:
    """Per model the memory the server reported while it was loaded (no estimate without a selection)."""
    bars = []
    for m in summary.models:
        measured = None
        if m.memory is not None:
            measured = m.memory.size_vram_bytes or m.memory.size_bytes
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
    return from_selection(summary, selection)


def from_selection(summary: RunSummary, selection: Selection) -> SelectionView:
    raise NotImplementedError


__all__ = ["format_bytes"]
