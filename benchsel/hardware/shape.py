"""The shape of a model as GGUF metadata describes it (layers, heads, sliding windows, vocabulary):
what the memory arithmetic needs. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchsel.errors import UsageError

SWA_CACHE_PAD = 256  # llama.cpp pads the sliding-window cache to this many cells
FALLBACK_VOCAB_SIZE = 262_144  # the largest common vocabulary: errs towards "does not fit"
# Sliding-window layout by architecture when the GGUF has no sliding_window_pattern key:
# period N means layer i slides unless (i + 1) % N == 0 (llama.cpp's set_swa_pattern).
SWA_PATTERN_BY_ARCH: dict[str, int] = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4}


# ---------------------------------------------------------------- model shape


@dataclass(frozen=True)
class ModelShape:
    """The numbers an estimate needs, read once from an Ollama-style ``model_info`` dict."""

    architecture: str
    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: tuple[int, ...]
    key_length: int
    value_length: int
    context_length: int | None
    vocab_size: int | None
    sliding_window: int | None
    sliding_layers: tuple[bool, ...]
    kv_layers: tuple[bool, ...]
    feed_forward_length: int | None
    parameter_count: int | None


def model_shape(model_info: Mapping[str, Any]) -> ModelShape:
    """Read the architecture numbers from ``model_info`` (Ollama's /api/show with verbose=true)."""
    arch = model_info.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise UsageError(
            "model_info has no 'general.architecture' - pass /api/show's model_info (verbose=true)"
        )

    def key(name: str) -> Any:
        return model_info.get(f"{arch}.{name}")

    layers = _required_int(key("block_count"), f"{arch}.block_count")
    embedding = _required_int(key("embedding_length"), f"{arch}.embedding_length")
    heads = _per_layer(key("attention.head_count"), layers, f"{arch}.attention.head_count")
    heads_kv = _per_layer(key("attention.head_count_kv"), layers, f"{arch}.attention.head_count_kv", heads)
    head_max = max(heads)
    window = _optional_int(key("attention.sliding_window"))
    shared = _optional_int(key("attention.shared_kv_layers")) or 0
    return ModelShape(
        architecture=arch,
        block_count=layers,
        embedding_length=embedding,
        head_count=head_max,
        head_count_kv=heads_kv,
        key_length=_optional_int(key("attention.key_length")) or embedding // head_max,
        value_length=_optional_int(key("attention.value_length")) or embedding // head_max,
        context_length=_optional_int(key("context_length")),
        vocab_size=_vocab_size(model_info, arch),
        sliding_window=window,
        sliding_layers=_sliding_layers(key("attention.sliding_window_pattern"), arch, layers, window),
        kv_layers=tuple(i < layers - shared for i in range(layers)),
        feed_forward_length=_optional_int(_first(key("feed_forward_length"))),
        parameter_count=_optional_int(model_info.get("general.parameter_count")),
    )


def _required_int(value: Any, name: str) -> int:
    number = _optional_int(value)
    if number is None or number <= 0:
        raise UsageError(f"model_info lacks a positive '{name}' - pass /api/show's model_info (verbose=true)")
    return number


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    return None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _per_layer(value: Any, layers: int, name: str, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
    if value is None and default is not None:
        return default  # GGUF semantics: no head_count_kv means as many KV heads as heads
    if isinstance(value, list):
        if len(value) != layers or not all(isinstance(v, int) for v in value):
            raise UsageError(
                f"'{name}' is a list of {len(value)} values for {layers} layers - Ollama blanks long "
                "arrays unless /api/show is called with verbose=true"
            )
        return tuple(int(v) for v in value)
    return (_required_int(value, name),) * layers


def _vocab_size(model_info: Mapping[str, Any], arch: str) -> int | None:
    size = _optional_int(model_info.get(f"{arch}.vocab_size"))
    tokens = model_info.get("tokenizer.ggml.tokens")
    if size is None and isinstance(tokens, list) and tokens:
        size = len(tokens)
    return size


def _sliding_layers(pattern: Any, arch: str, layers: int, window: int | None) -> tuple[bool, ...]:
    if window is None or window <= 0:
        return (False,) * layers
    if isinstance(pattern, list) and len(pattern) == layers:
        return tuple(bool(p) for p in pattern)
    period = _optional_int(pattern)
    if period is None:
        period = SWA_PATTERN_BY_ARCH.get(arch, 1)  # unknown arch: every layer global (safe side)
    if period == 0:
        return (True,) * layers
    return tuple((i + 1) % period != 0 for i in range(layers))
