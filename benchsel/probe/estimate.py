"""How long a probe will take, from the speeds the run measured: said before a probe starts on an
engine without a GPU, where a pilot LoRA takes minutes per model."""

from __future__ import annotations

from dataclasses import dataclass

from benchsel.summary import ModelSummary

# Training a token (forward and backward, fp32, through torch) costs about this many times reading
# one in llama.cpp's prefill (quantised weights, forward only). A rough factor: the estimate is
# meant to say "minutes" or "hours", not to the second.
TRAIN_TO_PREFILL_COST = 10.0
DEFAULT_PREFILL_TPS = 200.0
DEFAULT_REPLY_S = 5.0


@dataclass(frozen=True)
class ProbeEstimate:
    seconds: float
    per_model: dict[str, float]

    def text(self) -> str:
        minutes = self.seconds / 60
        when = f"{minutes:.0f} min" if minutes >= 1 else f"{self.seconds:.0f} s"
        return (
            f"No GPU: expect about {when} for {len(self.per_model)} models "
            "(a rough estimate from the run's measured speeds)"
        )


def _reply_seconds(model: ModelSummary) -> float:
    walls = [r.reply.wall_s for r in model.results if r.reply is not None and r.reply.wall_s > 0]
    return sum(walls) / len(walls) if walls else DEFAULT_REPLY_S


def _prompt_tokens(model: ModelSummary) -> float:
    counts = [r.reply.prompt_eval_count for r in model.results if r.reply and r.reply.prompt_eval_count]
    return sum(counts) / len(counts) if counts else 300.0


def _answer_tokens(model: ModelSummary) -> float:
    counts = [r.reply.eval_count for r in model.results if r.reply and r.reply.eval_count]
    return sum(counts) / len(counts) if counts else 100.0


def estimate_model_seconds(
    model: ModelSummary,
    *,
    method: str,
    cases: int,
    shots: int = 0,
    steps: int = 0,
    examples_per_step: int = 16,
    rerun_zero_shot: bool = False,
) -> float:
    """One model's probe: the probe cases answered once more (twice when the zero-shot is not in the
    store for this engine), plus the shots' prompt tokens or the pilot LoRA's training."""
    prefill = model.speed.prefill_tokens_per_s or DEFAULT_PREFILL_TPS
    answering = cases * _reply_seconds(model) * (2 if rerun_zero_shot else 1)
    if method == "fewshot":
        shot_tokens = shots * (_prompt_tokens(model) + _answer_tokens(model))
        return answering + cases * shot_tokens / prefill
    tokens = steps * examples_per_step * (_prompt_tokens(model) + _answer_tokens(model))
    return answering + tokens * TRAIN_TO_PREFILL_COST / prefill


def estimate_probe(models: list[ModelSummary], **kwargs: object) -> ProbeEstimate:
    per_model = {m.name: estimate_model_seconds(m, **kwargs) for m in models}  # type: ignore[arg-type]
    return ProbeEstimate(sum(per_model.values()), per_model)
