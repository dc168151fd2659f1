"""What a probe measured of one model, as stored with the run: the post-probe score with its interval,
the paired gain over zero-shot on the same cases, and (for the pilot LoRA) how the training went."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from benchsel.scoring.match import Counts
from benchsel.scoring.metrics import Estimate, f1_of, paired_bootstrap
from benchsel.summary import ModelSummary

ProbeMethod = Literal["fewshot", "lora"]
METHODS: tuple[ProbeMethod, ...] = ("fewshot", "lora")
PROBE_METRIC = "as_is_entity_f1"
"""What a probe measures: entity F1 of the replies as delivered, deploy-now's main metric; after
training the model is deployed as it is, so this is the score the training is for."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Record):
    value: float
    low: float
    high: float

    @classmethod
    def of(cls, estimate: Estimate) -> Interval:
        return cls(value=estimate.value, low=estimate.low, high=estimate.high)

    def estimate(self) -> Estimate:
        return Estimate(self.value, self.low, self.high)


class TrainingFigures(_Record):
    """The pilot LoRA of one model."""

    steps: int
    train_losses: list[float]
    eval_losses: list[float]
    train_seconds: float
    tokens_per_s: float
    peak_memory_bytes: int
    peak_memory_kind: str
    device: str
    examples: int
    adapter: str
    host: str | None = None
    """The Ray node that trained it (``benchsel probe --ray``); None: the machine that stored it."""


class ProbeFigures(_Record):
    """One model's probe. ``status`` failed keeps the reason and no figures."""

    model: str
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    metric: str = PROBE_METRIC
    cases: int = 0
    zero_shot: Interval | None = None
    probed: Interval | None = None
    gain: Interval | None = None
    p_not_better: float | None = Field(default=None, description="Share of resamples with no gain.")
    zero_shot_valid_json: float | None = None
    probed_valid_json: float | None = None
    before_run_id: str | None = None
    after_run_id: str | None = None
    seconds: float = 0.0
    """Wall time of this model's probe: the compute the predictor cost."""
    training: TrainingFigures | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.probed is not None


def per_case_counts(model: ModelSummary) -> dict[str, Counts]:
    """As-is entity counts per case (repeats summed), the unit the bootstrap resamples."""
    out: dict[str, Counts] = {}
    for reply in model.score.per_reply:
        out[reply.case_id] = out.get(reply.case_id, Counts()) + reply.as_is.entities.counts
    return out


def paired_figures(
    name: str, before: ModelSummary, after: ModelSummary, *, seed: int = 0, seconds: float = 0.0
) -> ProbeFigures:
    """Post-probe minus zero-shot on the cases both answered, paired by case."""
    a, b = per_case_counts(before), per_case_counts(after)
    shared = sorted(set(a) & set(b))
    diff = paired_bootstrap([a[c] for c in shared], [b[c] for c in shared], f1_of, seed=seed)
    return ProbeFigures(
        model=name,
        cases=len(shared),
        zero_shot=Interval.of(before.score.as_is.entities.f1),
        probed=Interval.of(after.score.as_is.entities.f1),
        gain=Interval.of(diff.difference),
        p_not_better=diff.p_not_better,
        zero_shot_valid_json=before.score.valid_json.value,
        probed_valid_json=after.score.valid_json.value,
        seconds=seconds,
    )
