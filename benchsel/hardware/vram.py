"""Inference VRAM from a model's shape (weights, KV cache, compute buffers), measured VRAM, and whether
a model fits a budget. Pure functions; docs/vram.md explains every constant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from benchsel.errors import UsageError
from benchsel.hardware.shape import FALLBACK_VOCAB_SIZE, SWA_CACHE_PAD, ModelShape, model_shape
from benchsel.hardware.units import GIB, format_bytes

KvCacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0"]
KV_BYTES_PER_ELEMENT: dict[str, Fraction] = {
    "f32": Fraction(4),
    "f16": Fraction(2),
    "bf16": Fraction(2),
    "q8_0": Fraction(34, 32),  # blocks of 32 int8 + one f16 scale
    "q4_0": Fraction(18, 32),  # blocks of 32 nibbles + one f16 scale
}
DEFAULT_GPU_MARGIN_BYTES = GIB  # llama.cpp leaves about this much free per GPU
PROJECTOR_SCRATCH_BYTES = GIB  # a vision projector's working memory, beside its weights


# ---------------------------------------------------------------- inference VRAM


@dataclass(frozen=True)
class VramEstimate:
    """Memory one loaded model needs, part by part (bytes). ``total_bytes`` includes the margin."""

    weights_bytes: int
    kv_cache_bytes: int
    compute_buffer_bytes: int
    projector_bytes: int
    margin_bytes: int
    ollama_preflight_bytes: int
    num_ctx: int
    parallel: int
    kv_cache: str
    batch: int
    notes: tuple[str, ...] = ()

    @property
    def footprint_bytes(self) -> int:
        """What the loaded model occupies (comparable with /api/ps ``size``): total minus margin."""
        return self.weights_bytes + self.kv_cache_bytes + self.compute_buffer_bytes + self.projector_bytes

    @property
    def total_bytes(self) -> int:
        return self.footprint_bytes + self.margin_bytes

    def as_rows(self) -> list[tuple[str, str]]:
        rows = [
            ("weights (file size)", format_bytes(self.weights_bytes)),
            (
                f"KV cache ({self.kv_cache}, {self.num_ctx} ctx x {self.parallel})",
                format_bytes(self.kv_cache_bytes),
            ),
            (f"compute buffer (batch {self.batch})", format_bytes(self.compute_buffer_bytes)),
        ]
        if self.projector_bytes:
            rows.append(("vision projector + scratch", format_bytes(self.projector_bytes)))
        rows.append(("free-VRAM margin", format_bytes(self.margin_bytes)))
        rows.append(("total (estimated)", format_bytes(self.total_bytes)))
        rows.append(("Ollama pre-flight (for comparison)", format_bytes(self.ollama_preflight_bytes)))
        return rows


def estimate_inference_vram(
    model_info: Mapping[str, Any],
    *,
    file_size_bytes: int,
    num_ctx: int = 4096,
    parallel: int = 1,
    kv_cache: str = "f16",
    batch: int = 512,
    has_projector: bool = False,
    projector_bytes: int = 0,
    projector_in_file: bool = False,
    flash_attention: bool = True,
    margin_bytes: int = DEFAULT_GPU_MARGIN_BYTES,
    projector_scratch_bytes: int = PROJECTOR_SCRATCH_BYTES,
) -> VramEstimate:
    """Estimate the memory llama.cpp (and so Ollama) needs to serve a GGUF model.

    ``projector_bytes`` is the vision projector's weight size; with ``projector_in_file`` it is
    part of ``file_size_bytes`` and moved to its own row. Pass ``margin_bytes=0`` for a CPU."""
    check_positive(file_size_bytes=file_size_bytes, num_ctx=num_ctx, parallel=parallel, batch=batch)
    shape = model_shape(model_info)
    notes: list[str] = []
    if shape.context_length and num_ctx > shape.context_length:
        notes.append(f"num_ctx {num_ctx} capped at the model's training context {shape.context_length}")
        num_ctx = shape.context_length
    multimodal = has_projector or projector_bytes > 0
    weights = file_size_bytes - projector_bytes if projector_in_file else file_size_bytes
    return VramEstimate(
        weights_bytes=weights,
        kv_cache_bytes=kv_cache_bytes(
            shape, num_ctx=num_ctx, parallel=parallel, kv_cache=kv_cache, batch=batch
        ),
        compute_buffer_bytes=compute_buffer_bytes(
            shape,
            num_ctx=num_ctx,
            parallel=parallel,
            batch=batch,
            flash_attention=flash_attention,
            notes=notes,
        ),
        projector_bytes=projector_bytes + projector_scratch_bytes if multimodal else 0,
        margin_bytes=margin_bytes,
        ollama_preflight_bytes=ollama_preflight_bytes(
            model_info, file_size_bytes=file_size_bytes, num_ctx=num_ctx * parallel
        ),
        num_ctx=num_ctx,
        parallel=parallel,
        kv_cache=kv_cache,
        batch=batch,
        notes=tuple(notes),
    )


def kv_bytes_per_element(kv_cache: str) -> Fraction:
    try:
        return KV_BYTES_PER_ELEMENT[kv_cache]
    except KeyError:
        raise UsageError(
            f"unknown KV cache type {kv_cache!r} - use one of {', '.join(KV_BYTES_PER_ELEMENT)} (e.g. 'q8_0')"
        ) from None


def kv_cache_bytes(
    shape: ModelShape, *, num_ctx: int, parallel: int = 1, kv_cache: str = "f16", batch: int = 512
) -> int:
    """Sum over layers that own a cache of tokens x (key + value length) x KV heads x bytes."""
    per_element = kv_bytes_per_element(kv_cache)
    total = Fraction(0)
    for layer in range(shape.block_count):
        if not shape.kv_layers[layer]:
            continue
        tokens = layer_cache_tokens(shape, layer, num_ctx=num_ctx, parallel=parallel, batch=batch)
        elements = tokens * (shape.key_length + shape.value_length) * shape.head_count_kv[layer]
        total += elements * per_element
    return int(total)


def layer_cache_tokens(shape: ModelShape, layer: int, *, num_ctx: int, parallel: int, batch: int) -> int:
    """Cells of KV cache one layer holds: the full context, or for a sliding layer a padded window per
    slot (llama-server started with ``-np`` keeps one cache stream per slot)."""
    if not shape.sliding_layers[layer] or shape.sliding_window is None:
        return num_ctx * parallel
    return parallel * sliding_cells_per_slot(shape, num_ctx=num_ctx, batch=batch)


def sliding_cells_per_slot(shape: ModelShape, *, num_ctx: int, batch: int) -> int:
    """``pad256(min(num_ctx, sliding_window + batch))``: llama.cpp's SWA cache for one stream."""
    window = min(num_ctx, (shape.sliding_window or 0) + batch)
    return -(-window // SWA_CACHE_PAD) * SWA_CACHE_PAD


def compute_buffer_bytes(
    shape: ModelShape,
    *,
    num_ctx: int,
    parallel: int = 1,
    batch: int = 512,
    flash_attention: bool = True,
    notes: list[str] | None = None,
) -> int:
    """llama.cpp's compute buffer plus its logits output buffer, fitted to llama-server's reports
    (docs/vram.md): one micro-batch's activations (5 x embedding + 3 x ffn f32 values per token),
    2 bytes per token and KV cell a slot attends to (the f16 masks), one f32 logits row per slot.
    Without flash attention, Ollama's graph term (it holds the KQ scores) when that is larger."""
    ubatch = min(batch, num_ctx * parallel)
    embedding = shape.embedding_length
    vocab = shape.vocab_size
    if vocab is None:
        vocab = FALLBACK_VOCAB_SIZE
        if notes is not None:
            notes.append(f"vocabulary size unknown: assumed {FALLBACK_VOCAB_SIZE}")
    ffn = shape.feed_forward_length
    if ffn is None:
        ffn = 4 * embedding
        if notes is not None:
            notes.append("feed_forward_length unknown: assumed 4 x embedding")
    cells = num_ctx  # per slot: each slot's stream has its own mask
    if any(shape.sliding_layers):
        cells += sliding_cells_per_slot(shape, num_ctx=num_ctx, batch=batch)
    graph = 4 * ubatch * (5 * embedding + 3 * ffn) + 2 * ubatch * cells
    if not flash_attention:
        graph = max(graph, 4 * ubatch * (1 + 4 * embedding + num_ctx * (1 + shape.head_count)))
    return graph + 4 * vocab * parallel


def ollama_preflight_bytes(model_info: Mapping[str, Any], *, file_size_bytes: int, num_ctx: int) -> int:
    """Ollama's documented quick check: file size + 2 x layers x kv_heads x head_dim x ctx x 2 bytes
    (``num_ctx`` here is the total context, num_ctx x parallel)."""
    shape = model_shape(model_info)
    kv_heads = sum(shape.head_count_kv)  # = layers x kv_heads when every layer has the same count
    return file_size_bytes + 2 * kv_heads * shape.key_length * num_ctx * 2


def check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise UsageError(f"{name} must be a positive number, got {value} - for example {name}=4096")


# ---------------------------------------------------------------- measured VRAM and the fit


@dataclass(frozen=True)
class MeasuredVram:
    """Memory a loaded model really takes, e.g. from Ollama's /api/ps (``size``, ``size_vram``)."""

    size_bytes: int
    size_vram_bytes: int
    source: str

    @property
    def spilled_to_cpu(self) -> bool:
        return self.size_vram_bytes < self.size_bytes

    @property
    def on_cpu_only(self) -> bool:
        """Nothing was on a GPU (llama-server or Ollama on a machine without one): the size is RAM."""
        return self.size_vram_bytes <= 0


@dataclass(frozen=True)
class VramFigure:
    """The figure to decide with, and both sources beside it, labelled."""

    bytes_needed: int
    label: str
    estimated_bytes: int | None
    measured_bytes: int | None


@dataclass(frozen=True)
class FitResult:
    fits: bool
    headroom_bytes: int
    needed_bytes: int
    available_bytes: int


def estimate_error(estimate: VramEstimate, measured: MeasuredVram) -> float:
    """Relative error of the estimate's footprint (no margin) against the measured size:
    positive means the estimate was too high."""
    if measured.size_bytes <= 0:
        raise UsageError(
            f"measured size must be positive, got {measured.size_bytes} (from {measured.source})"
        )
    return (estimate.footprint_bytes - measured.size_bytes) / measured.size_bytes


def vram_figure(estimate: VramEstimate | None, measured: MeasuredVram | None = None) -> VramFigure:
    """A figure measured on a GPU beats an estimate; the other is kept for display.

    A figure measured on the CPU is RAM: CPU buffers lack the GPU's margin and scratch, so it is never
    used as VRAM. The estimate decides and the label says why; without an estimate, the RAM figure plus
    the default GPU margin stands in, labelled as such."""
    estimated = estimate.total_bytes if estimate is not None else None
    if measured is not None and measured.on_cpu_only:
        ram = format_bytes(measured.size_bytes)
        if estimate is not None:
            return VramFigure(
                estimate.total_bytes,
                f"estimated ({ram} measured in RAM on the CPU, not VRAM)",
                estimated,
                None,
            )
        return VramFigure(
            measured.size_bytes + DEFAULT_GPU_MARGIN_BYTES,
            f"RAM measured on the CPU ({ram}) + {format_bytes(DEFAULT_GPU_MARGIN_BYTES)} margin, no estimate",
            None,
            None,
        )
    if measured is not None:
        return VramFigure(
            measured.size_bytes, f"measured ({measured.source})", estimated, measured.size_bytes
        )
    if estimate is None:
        raise UsageError("no VRAM figure: give a model_info estimate or a measured size (e.g. from /api/ps)")
    return VramFigure(estimate.total_bytes, "estimated", estimated, None)


def fits(
    needed: int | VramEstimate | MeasuredVram | VramFigure, vram_budget_bytes: int, reserve_bytes: int = 0
) -> FitResult:
    """Does ``needed`` fit in the budget once ``reserve_bytes`` (models staying loaded) is set aside?"""
    if vram_budget_bytes <= 0:
        raise UsageError(
            f"the VRAM budget must be positive, got {vram_budget_bytes} - for example --vram 8GiB"
        )
    if reserve_bytes < 0:
        raise UsageError(f"the reserve cannot be negative, got {reserve_bytes} - for example --reserve 3GiB")
    needed_bytes = _needed_bytes(needed)
    available = vram_budget_bytes - reserve_bytes
    headroom = available - needed_bytes
    return FitResult(headroom >= 0, headroom, needed_bytes, available)


def _needed_bytes(needed: int | VramEstimate | MeasuredVram | VramFigure) -> int:
    if isinstance(needed, VramEstimate):
        return needed.total_bytes
    if isinstance(needed, MeasuredVram):
        return needed.size_bytes
    if isinstance(needed, VramFigure):
        return needed.bytes_needed
    return int(needed)
