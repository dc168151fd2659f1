"""The third ranking, *measured trainability*: the run's latest probe, ranked by the score each model
reached after it, beside what the two predicted rankings expected of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchsel.probe.figures import ProbeFigures

if TYPE_CHECKING:
    from benchsel.selection import Ranking
    from benchsel.store import StoredProbe

METHOD_TEXT = {
    "fewshot": "few-shot probe ({shots} worked examples from the training data in the prompt)",
    "lora": "pilot LoRA ({steps} steps, the same data, seed and settings for every model)",
}


@dataclass(frozen=True)
class MeasuredEntry:
    model: str
    rank: int | None
    figures: ProbeFigures
    predicted: float | None
    """The model's trainable-potential score: what the heuristic expected."""
    excluded: bool
    reason: str

    @property
    def score(self) -> float:
        return self.figures.probed.value if self.figures.probed else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rank": self.rank,
            "score": round(self.score, 6),
            "excluded": self.excluded,
            "reason": self.reason,
            "predicted_trainable_potential": None if self.predicted is None else round(self.predicted, 6),
            "figures": self.figures.model_dump(),
        }


@dataclass(frozen=True)
class MeasuredRanking:
    probe_id: str
    method: str
    created_at: str
    description: str
    split: dict[str, Any]
    entries: tuple[MeasuredEntry, ...]

    name = "measured_trainability"

    @property
    def winner(self) -> MeasuredEntry | None:
        return next((e for e in self.entries if not e.excluded), None)

    def to_json(self) -> dict[str, Any]:
        winner = self.winner
        return {
            "winner": winner.model if winner else None,
            "probe_id": self.probe_id,
            "method": self.method,
            "created_at": self.created_at,
            "description": self.description,
            "main_metric": "as_is_entity_f1 after the probe, on the probe split",
            "probe_cases": len(self.split.get("probe", [])),
            "test_cases": len(self.split.get("test", [])),
            "entries": [e.to_json() for e in self.entries],
        }


def describe(probe: StoredProbe) -> str:
    template = METHOD_TEXT.get(probe.method, probe.method)
    return template.format(**probe.settings)


DISRUPTED = (
    "the pilot made it worse: a pilot this short or at this learning rate can throw a model that "
    "already does the task off course (docs/decision-validity.md), so this rank measures the disruption, "
    "not what a full LoRA teaches; re-probe with more --steps, or compare with --method fewshot"
)


def _reason(f: ProbeFigures, method: str) -> str:
    assert f.probed is not None and f.gain is not None and f.zero_shot is not None
    text = (
        f"after the probe as-is entity F1 {f.probed.estimate()}, "
        f"gain {f.gain.estimate():+.2f} over zero-shot {f.zero_shot.value:.2f} on the same {f.cases} cases"
    )
    if f.training is not None:
        text += f"; trained {f.training.steps} steps in {f.training.train_seconds:.0f} s"
    if method == "lora" and f.gain.high < 0:  # the whole interval below zero: worse for sure
        text += f"; {DISRUPTED}"
    return text


def measured_ranking(probe: StoredProbe, trainable: Ranking | None = None) -> MeasuredRanking:
    """Rank the probe's models by their post-probe score; a model the constraints exclude from
    trainable potential, or whose probe failed, is listed last as excluded."""
    predicted = {e.model: e for e in trainable.entries} if trainable is not None else {}
    rows = []
    for name, data in probe.models.items():
        figures = ProbeFigures.model_validate(data)
        entry = predicted.get(name)
        why_not = []
        if not figures.ok:
            why_not.append(f"probe failed: {figures.error}")
        if entry is not None and entry.excluded:
            why_not.extend(entry.exclusions)
        rows.append((name, figures, entry.score if entry else None, why_not))
    rows.sort(key=lambda r: (bool(r[3]), -round(r[1].probed.value if r[1].probed else 0.0, 4), r[0]))
    entries = []
    rank = 0
    for name, figures, score, why_not in rows:
        rank += 0 if why_not else 1
        reason = f"excluded: {'; '.join(why_not)}" if why_not else _reason(figures, probe.method)
        entries.append(MeasuredEntry(name, None if why_not else rank, figures, score, bool(why_not), reason))
    return MeasuredRanking(
        probe.id, probe.method, probe.created_at, describe(probe), probe.split, tuple(entries)
    )
