"""What a person sets for a selection: the hardware constraints and the named weights of both scores
(a weights file, --weight overrides). docs/selection.md explains every weight."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchsel import defaults, hardware
from benchsel.errors import UsageError

RankingName = Literal["trainable_potential", "deploy_now"]


def _validated(cls: type[BaseModel], data: Mapping[str, Any], what: str) -> Any:
    """Build a pydantic record, turning a validation error into a UsageError with the fix."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or what
        if err["type"] == "extra_forbidden":
            valid = ", ".join(cls.model_fields)
            raise UsageError(f"unknown {what} '{where}' - valid names: {valid}") from None
        if not err["loc"]:  # a check across fields: its message says what to change
            raise UsageError(str(err["msg"]).removeprefix("Value error, ")) from None
        raise UsageError(f"{what} '{where}': {err['msg']} (got {err.get('input')!r})") from None


class Constraints(BaseModel):
    """What the deployment (and, optionally, the training) hardware allows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vram_bytes: int | None = Field(default=None, gt=0)
    """The GPU's memory; None ranks without a VRAM check (every entry says so)."""
    reserve_bytes: int = Field(default=0, ge=0)
    """Memory kept for models that stay loaded beside this one."""
    num_ctx: int = Field(default=defaults.NUM_CTX, gt=0)
    parallel: int = Field(default=1, gt=0)
    kv_cache: hardware.KvCacheType = "f16"
    margin_bytes: int = Field(default=hardware.DEFAULT_GPU_MARGIN_BYTES, ge=0)
    """Free memory llama.cpp keeps per GPU; added to estimates, not to measured figures."""
    min_tps: float | None = Field(default=None, ge=0)
    """Lowest acceptable decode speed (tokens per second)."""
    train_vram_bytes: int | None = Field(default=None, gt=0)
    """Memory of the training GPU; when given, trainable potential excludes models that cannot train."""
    method: hardware.TrainMethod = "lora"

    @model_validator(mode="after")
    def _reserve_below_budget(self) -> Constraints:
        if self.vram_bytes is not None and self.reserve_bytes >= self.vram_bytes:
            raise ValueError(
                "the reserve must be smaller than the VRAM budget - lower --reserve or raise --vram"
            )
        return self

    @property
    def available_bytes(self) -> int | None:
        return None if self.vram_bytes is None else self.vram_bytes - self.reserve_bytes

    def describe(self) -> str:
        """One line for a person: "VRAM 8.0 GiB, reserve 3.0 GiB, num_ctx 4096 x 1, KV f16"."""
        parts = [
            f"VRAM {hardware.format_bytes(self.vram_bytes)}" if self.vram_bytes else "VRAM not checked",
            f"reserve {hardware.format_bytes(self.reserve_bytes)}",
            f"num_ctx {self.num_ctx} x {self.parallel}",
            f"KV {self.kv_cache}",
        ]
        if self.min_tps is not None:
            parts.append(f"min {self.min_tps:g} tok/s")
        if self.train_vram_bytes is not None:
            parts.append(f"train {self.method} in {hardware.format_bytes(self.train_vram_bytes)}")
        return ", ".join(parts)

    @classmethod
    def of(cls, **values: Any) -> Constraints:
        """Like the constructor, but a bad value raises UsageError naming the field."""
        result: Constraints = _validated(cls, values, "constraint")
        return result


class Weights(BaseModel):
    """The named weights of both scores. Each score is the weighted mean of its metrics (weights
    need not sum to 1). docs/selection.md says why each weight is what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # trainable potential: what LoRA cannot cheaply teach weighs most
    content_entity_recall: float = Field(default=0.40, ge=0)
    """Entities found in the recovered answer: understanding the text, the hardest thing to train."""
    content_relationship_f1: float = Field(default=0.25, ge=0)
    """Relationships right in the recovered answer: reading who does what to whom."""
    content_entity_f1: float = Field(default=0.20, ge=0)
    """Entity precision and recall together; precision is partly convention, which trains easily."""
    valid_json: float = Field(default=0.05, ge=0)
    """Whole reply parses as JSON: the format LoRA fixes in a few hundred examples."""
    schema_valid: float = Field(default=0.05, ge=0)
    """Reply follows the schema: also format, also cheap to train."""
    no_thinking_leak: float = Field(default=0.05, ge=0)
    """1 - share of output spent before any JSON: a habit training (or a template) can remove."""
    # deploy-now: what you get today
    as_is_entity_f1: float = Field(default=0.45, ge=0)
    """Entity F1 of the replies as delivered (an unparseable reply predicts nothing)."""
    as_is_relationship_f1: float = Field(default=0.35, ge=0)
    """Relationship F1 of the replies as delivered."""
    as_is_valid_json: float = Field(default=0.20, ge=0)
    """Share of replies a program can parse without repair."""

    @model_validator(mode="after")
    def _each_score_has_weight(self) -> Weights:
        for name, keys in SCORE_METRICS.items():
            if not any(getattr(self, key) > 0 for key in keys):
                raise ValueError(
                    f"every {name} weight is 0 - give at least one of {', '.join(keys)} a weight"
                )
        for key in type(self).model_fields:
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"weight {key} must be a finite number")
        return self

    @classmethod
    def of(cls, **values: Any) -> Weights:
        result: Weights = _validated(cls, values, "weight")
        return result

    def of_ranking(self, ranking: RankingName) -> dict[str, float]:
        return {key: float(getattr(self, key)) for key in SCORE_METRICS[ranking]}


SCORE_METRICS: dict[RankingName, tuple[str, ...]] = {
    "trainable_potential": (
        "content_entity_recall",
        "content_relationship_f1",
        "content_entity_f1",
        "valid_json",
        "schema_valid",
        "no_thinking_leak",
    ),
    "deploy_now": ("as_is_entity_f1", "as_is_relationship_f1", "as_is_valid_json"),
}


WEIGHT_KEYS = tuple(dict.fromkeys(key for keys in SCORE_METRICS.values() for key in keys))


# A weight is named after the registered metric it weighs, except where one metric has a weight in each
# score.
WEIGHT_METRIC = {"as_is_valid_json": "valid_json"}


# The metric a close call is judged on: the heaviest-weighted default of each score.
MAIN_METRIC: dict[RankingName, str] = {
    "trainable_potential": "content_entity_recall",
    "deploy_now": "as_is_entity_f1",
}


DEFAULT_WEIGHTS = Weights()


def parse_weight_overrides(pairs: Iterable[str], base: Weights = DEFAULT_WEIGHTS) -> Weights:
    """Apply ``name=value`` overrides (from ``--weight``) to ``base``."""
    values = base.model_dump()
    valid = ", ".join(Weights.model_fields)
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"cannot use weight {pair!r} - write NAME=VALUE with NAME one of: {valid}")
        if name not in Weights.model_fields:
            raise UsageError(f"unknown weight '{name}' - valid names: {valid}")
        try:
            values[name] = float(raw)
        except ValueError:
            raise UsageError(f"weight {name}={raw!r} is not a number - e.g. {name}=0.4") from None
    return Weights.of(**values)


def load_weights(path: str | Path, base: Weights = DEFAULT_WEIGHTS) -> Weights:
    """Weights from a TOML or JSON file: top-level keys or a ``[weights]`` table; missing keys keep
    ``base``'s values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be read ({exc.strerror}) - give a TOML or JSON weights file"
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("weights"), dict):
        data = data["weights"]
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must hold a table of NAME = VALUE weights")
    return Weights.of(**{**base.model_dump(), **data})
