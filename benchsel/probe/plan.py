"""What a probe is asked to do (``ProbePlan``), and the pilot LoRA's settings and folder, which are
the same for every model, wherever it trains."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel.defaults import OUT_DIR
from benchsel.errors import UsageError
from benchsel.probe.figures import ProbeMethod

if TYPE_CHECKING:
    from benchsel.train.lora import TrainSettings

StageFn = Callable[[str], None]
DEFAULT_STEPS = 20
DEFAULT_SHOTS = 3
DEFAULT_FRACTION = 0.5


@dataclass(frozen=True)
class ProbePlan:
    """What `benchsel probe` is asked to do."""

    run_id: str
    method: ProbeMethod
    top: int | None = None
    steps: int = DEFAULT_STEPS
    shots: int = DEFAULT_SHOTS
    fraction: float = DEFAULT_FRACTION
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    """TrainSettings overrides for the pilot LoRA (max_steps comes from ``steps``)."""
    synthetic_n: int | None = None
    db: Path | None = None
    out_dir: Path | None = None
    threads: int | None = None
    cache_dir: Path | None = None
    models: tuple[str, ...] | None = None
    """Probe these models of the run instead of the top of trainable potential."""
    ray: str | None = None
    """A Ray cluster's address ('auto', 'local'): each pilot LoRA and each benchmark is a Ray task."""
    ray_gpus: float = 0.0
    """GPUs each Ray task asks for."""
    ray_memory_bytes: int | None = None
    """Memory a pilot LoRA's task asks for (None: benchsel.hardware's training estimate)."""


def pilot_settings(plan: ProbePlan) -> TrainSettings:
    """The same settings for every model: the trainer's defaults, the plan's overrides, ``steps``.
    One pass over fresh data, so no epoch ends and early stopping never cuts a pilot short."""
    from pydantic import ValidationError

    from benchsel.train.lora import TrainSettings

    values = {"seed": plan.seed, "epochs": 1.0, **plan.settings, "max_steps": plan.steps}
    try:
        return TrainSettings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"pilot LoRA setting {where}: {err['msg']} (got {err.get('input')!r})") from None


def synthetic_count(plan: ProbePlan, settings: TrainSettings) -> int:
    """Enough synthetic examples that no step sees one twice (plus a tenth for validation)."""
    if plan.synthetic_n is not None:
        return plan.synthetic_n
    return max(20, -(-plan.steps * settings.effective_batch_size * 10 // 9) + 1)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem if name.endswith(".gguf") else name)


def pilot_dir(plan: ProbePlan, name: str) -> Path:
    return (plan.out_dir or OUT_DIR / "probes" / plan.run_id) / f"{_slug(name)}-{plan.steps}steps"
