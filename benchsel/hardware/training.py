"""Peak memory of a LoRA/QLoRA training step from the model's shape. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from benchsel.errors import UsageError
from benchsel.hardware.shape import model_shape
from benchsel.hardware.units import GIB, format_bytes
from benchsel.hardware.vram import check_positive

# ---------------------------------------------------------------- training memory

TrainMethod = Literal["lora", "qlora"]
Optimizer = Literal["adamw", "adamw_8bit", "sgd"]
Precision = Literal["bf16", "fp32"]
PRECISION_BYTES: dict[str, int] = {"bf16": 2, "fp32": 4}
OPTIMIZER_BYTES_PER_PARAM: dict[str, int] = {"adamw": 8, "adamw_8bit": 2, "sgd": 0}
NF4_BYTES_PER_PARAM = Fraction(1, 2) + Fraction(1, 64) + Fraction(4, 64 * 256)  # 4 bit + double-quant
ACTIVATION_FACTOR_FULL = 34  # bytes per (token x hidden) per layer, Korthikanti et al. 2022, 16-bit
ACTIVATION_FACTOR_CHECKPOINTED = 2  # only the layer input (bf16) is kept per layer
DEFAULT_TRAINING_OVERHEAD_BYTES = GIB  # CUDA context, cuBLAS workspace, allocator slack
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainingEstimate:
    """Peak memory of one LoRA/QLoRA training step, part by part (bytes)."""

    method: str
    precision: str
    base_weights_bytes: int
    adapter_params: int
    adapter_bytes: int
    gradients_bytes: int
    optimizer_states_bytes: int
    activations_bytes: int
    logits_bytes: int
    overhead_bytes: int

    @property
    def total_bytes(self) -> int:
        return (
            self.base_weights_bytes
            + self.adapter_bytes
            + self.gradients_bytes
            + self.optimizer_states_bytes
            + self.activations_bytes
            + self.logits_bytes
            + self.overhead_bytes
        )

    def as_rows(self) -> list[tuple[str, str]]:
        return [
            (
                f"base weights ({'NF4' if self.method == 'qlora' else self.precision})",
                format_bytes(self.base_weights_bytes),
            ),
            (f"adapter ({self.adapter_params:,} params, fp32)", format_bytes(self.adapter_bytes)),
            ("gradients (fp32)", format_bytes(self.gradients_bytes)),
            ("optimizer states", format_bytes(self.optimizer_states_bytes)),
            ("activations", format_bytes(self.activations_bytes)),
            ("logits (fp32)", format_bytes(self.logits_bytes)),
            ("framework overhead", format_bytes(self.overhead_bytes)),
            ("total (estimated)", format_bytes(self.total_bytes)),
        ]


def linear_shapes(
    hidden_size: int,
    intermediate_size: int,
    num_heads: int | None,
    num_kv_heads: int | None,
    head_dim: int | None,
) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer in a llama-like block."""
    heads = num_heads or 1
    dim = head_dim or hidden_size // heads
    q_out = heads * dim if num_heads else hidden_size
    kv_out = (num_kv_heads or heads) * dim if num_heads else hidden_size
    return {
        "q_proj": (hidden_size, q_out),
        "k_proj": (hidden_size, kv_out),
        "v_proj": (hidden_size, kv_out),
        "o_proj": (q_out, hidden_size),
        "gate_proj": (hidden_size, intermediate_size),
        "up_proj": (hidden_size, intermediate_size),
        "down_proj": (intermediate_size, hidden_size),
    }


def _target_names(target_modules: str | Sequence[str]) -> tuple[str, ...]:
    if target_modules == "all-linear":
        return ATTENTION_MODULES + MLP_MODULES
    if target_modules == "attention":
        return ATTENTION_MODULES
    names = (target_modules,) if isinstance(target_modules, str) else tuple(target_modules)
    unknown = [n for n in names if n not in ATTENTION_MODULES + MLP_MODULES]
    if unknown:
        raise UsageError(
            f"unknown target modules {unknown} - use 'all-linear', 'attention' "
            "or names such as q_proj, v_proj"
        )
    return names


def estimate_training_memory(
    *,
    parameter_count: int,
    hidden_size: int,
    num_layers: int,
    vocab_size: int,
    intermediate_size: int | None = None,
    num_heads: int | None = None,
    num_kv_heads: int | None = None,
    head_dim: int | None = None,
    method: TrainMethod = "lora",
    rank: int = 16,
    target_modules: str | Sequence[str] = "all-linear",
    seq_len: int = 1024,
    batch: int = 1,
    gradient_checkpointing: bool = True,
    optimizer: Optimizer = "adamw",
    precision: Precision = "bf16",
    overhead_bytes: int = DEFAULT_TRAINING_OVERHEAD_BYTES,
) -> TrainingEstimate:
    """Peak memory of a LoRA (bf16 base) or QLoRA (NF4 base) step on a llama-like model.
    ``intermediate_size`` defaults to 4 x hidden; without ``num_heads`` k/v are hidden x hidden.
    ``precision="fp32"`` (a CPU run with bf16 off) doubles the base weights and the activations."""
    check_positive(
        parameter_count=parameter_count,
        hidden_size=hidden_size,
        num_layers=num_layers,
        vocab_size=vocab_size,
        rank=rank,
        seq_len=seq_len,
        batch=batch,
    )
    if method not in ("lora", "qlora"):
        raise UsageError(f"unknown training method {method!r} - use 'lora' or 'qlora'")
    if precision not in PRECISION_BYTES:
        raise UsageError(f"unknown precision {precision!r} - use 'bf16' or 'fp32'")
    if optimizer not in OPTIMIZER_BYTES_PER_PARAM:
        raise UsageError(
            f"unknown optimizer {optimizer!r} - use one of {', '.join(OPTIMIZER_BYTES_PER_PARAM)}"
        )
    shapes = linear_shapes(
        hidden_size, intermediate_size or 4 * hidden_size, num_heads, num_kv_heads, head_dim
    )
    targets = _target_names(target_modules)
    adapter_params = num_layers * sum(rank * (shapes[n][0] + shapes[n][1]) for n in targets)
    linear_params = min(parameter_count, num_layers * sum(i * o for i, o in shapes.values()))
    width = PRECISION_BYTES[precision]
    if method == "qlora":
        base = int(linear_params * NF4_BYTES_PER_PARAM) + width * (parameter_count - linear_params)
    else:
        base = width * parameter_count
    token_hidden = seq_len * batch * hidden_size * width // 2  # the factors below assume 16-bit
    if gradient_checkpointing:  # every layer keeps its input; one layer is recomputed at a time
        activations = (
            num_layers * ACTIVATION_FACTOR_CHECKPOINTED * token_hidden + ACTIVATION_FACTOR_FULL * token_hidden
        )
    else:
        activations = num_layers * ACTIVATION_FACTOR_FULL * token_hidden
    return TrainingEstimate(
        method=method,
        precision=precision,
        base_weights_bytes=base,
        adapter_params=adapter_params,
        adapter_bytes=4 * adapter_params,
        gradients_bytes=4 * adapter_params,
        optimizer_states_bytes=OPTIMIZER_BYTES_PER_PARAM[optimizer] * adapter_params,
        activations_bytes=activations,
        logits_bytes=4 * seq_len * batch * vocab_size,
        overhead_bytes=overhead_bytes,
    )


def training_memory_from_model_info(
    model_info: Mapping[str, Any], *, parameter_count: int | None = None, **options: Any
) -> TrainingEstimate:
    """``estimate_training_memory`` with the sizes read from ``model_info``; ``options`` are its
    keyword arguments (method, rank, seq_len, ...). ``parameter_count`` overrides a missing key."""
    shape = model_shape(model_info)
    count = parameter_count or shape.parameter_count
    if count is None:
        raise UsageError(
            "model_info has no 'general.parameter_count' - "
            "pass parameter_count= (the sum of the GGUF tensor sizes)"
        )
    if shape.vocab_size is None:
        raise UsageError("model_info has no vocabulary size - call /api/show with verbose=true")
    return estimate_training_memory(
        parameter_count=count,
        hidden_size=shape.embedding_length,
        num_layers=shape.block_count,
        vocab_size=shape.vocab_size,
        intermediate_size=shape.feed_forward_length,
        num_heads=shape.head_count,
        num_kv_heads=max(shape.head_count_kv),
        head_dim=shape.key_length,
        **options,
    )
