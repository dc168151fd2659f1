"""Memory arithmetic for choosing a model: inference VRAM from GGUF metadata, measured VRAM, GPU
detection, and LoRA/QLoRA training memory. Pure functions; docs/vram.md explains every constant."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from benchsel.errors import UsageError

KIB = 1024
MIB = 1024**2
GIB = 1024**3

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
    _check_positive(file_size_bytes=file_size_bytes, num_ctx=num_ctx, parallel=parallel, batch=batch)
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


def _check_positive(**values: int) -> None:
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


_BUFFER_RE = re.compile(
    r"(?P<device>\S+)\s+(?P<kind>model|KV|RS|compute|output|LoRA) buffer size\s*=\s*(?P<mib>[\d.]+)\s*MiB"
)
_BUFFER_PART = {"model": "model", "KV": "kv", "RS": "kv", "compute": "compute", "output": "output"}


@dataclass(frozen=True)
class LlamaServerBuffer:
    """One ``<device> <kind> buffer size = N MiB`` line of a llama-server (llama.cpp) log."""

    device: str
    kind: str
    mib: float

    @property
    def on_device(self) -> bool:
        """On an accelerator: not a ``CPU*`` buffer nor a pinned ``*_Host`` one."""
        return not (self.device.startswith("CPU") or self.device.endswith("_Host"))


def llama_server_buffers(log: str) -> tuple[LlamaServerBuffer, ...]:
    """Every buffer line of a llama-server log, in order (a sliding-window model has two KV lines)."""
    return tuple(LlamaServerBuffer(m["device"], m["kind"], float(m["mib"])) for m in _BUFFER_RE.finditer(log))


@dataclass(frozen=True)
class LlamaServerMemory:
    """The buffers llama.cpp reports when it loads a model, summed by part (bytes)."""

    model_bytes: int
    kv_cache_bytes: int
    compute_buffer_bytes: int
    output_bytes: int
    device_bytes: int  # the part on an accelerator (not CPU / *_Host buffers)
    adapter_bytes: int = 0  # LoRA adapters loaded with --lora

    @property
    def total_bytes(self) -> int:
        return (
            self.model_bytes
            + self.kv_cache_bytes
            + self.compute_buffer_bytes
            + self.output_bytes
            + self.adapter_bytes
        )

    def as_measured(self, source: str = "llama-server log") -> MeasuredVram:
        return MeasuredVram(self.total_bytes, self.device_bytes, source)


def parse_llama_server_memory(log: str) -> LlamaServerMemory:
    """Sum the buffer sizes llama-server logs at load time, by part; raises if the log has none."""
    buffers = llama_server_buffers(log)
    if not buffers:
        raise UsageError(
            "no 'buffer size = N MiB' lines in the llama-server log - "
            "pass the stderr it printed while loading the model"
        )
    parts = {"model": 0, "kv": 0, "compute": 0, "output": 0, "adapter": 0}
    for buffer in buffers:
        parts[_BUFFER_PART.get(buffer.kind, "adapter")] += round(buffer.mib * MIB)
    device = sum(round(b.mib * MIB) for b in buffers if b.on_device)
    return LlamaServerMemory(
        parts["model"], parts["kv"], parts["compute"], parts["output"], device, parts["adapter"]
    )


# ---------------------------------------------------------------- byte strings

_UNITS = {
    "": 1,
    "b": 1,
    "k": KIB,
    "kib": KIB,
    "kb": 1000,
    "m": MIB,
    "mib": MIB,
    "mb": 1000**2,
    "g": GIB,
    "gib": GIB,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'8GiB', '512MiB', '7.5G' (binary: G = GiB) or '8GB' (decimal: 8 x 10^9) -> bytes. A number
    without a unit is an error (is '8' bytes or GiB?), except 0."""
    match = _BYTES_RE.match(text) if isinstance(text, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"cannot read {text!r} as a size - write a number and a unit, e.g. 8GiB, {SIZE_UNITS}"
        )
    number = Fraction(match.group(1))
    if not unit and number != 0:  # "8" meant 8 GiB, never 8 bytes: make the unit explicit
        raise UsageError(f"size {text.strip()!r} has no unit - write e.g. {text.strip()}GiB; {SIZE_UNITS}")
    return int(number * _UNITS[unit])


SIZE_UNITS = "units: B, KiB/K, MiB/M, GiB/G, TiB/T (binary), KB, MB, GB, TB (decimal)"


def format_bytes(n: int) -> str:
    """Binary units, one decimal: 5_261_334_528 -> '4.9 GiB'; under 1 KiB in plain bytes."""
    size = abs(n)
    sign = "-" if n < 0 else ""
    if size < KIB:
        return f"{sign}{size} B"
    for unit, scale in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale * 0.9995 or unit == "KiB":
            return f"{sign}{size / scale:.1f} {unit}"
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- GPU detection


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    vendor: Literal["nvidia", "amd"]
    total_bytes: int
    used_bytes: int

    @property
    def free_bytes(self) -> int:
        return self.total_bytes - self.used_bytes


CommandRunner = Callable[[Sequence[str]], str]
NVIDIA_SMI = ("nvidia-smi", "--query-gpu=name,memory.total,memory.used", "--format=csv,noheader,nounits")
ROCM_SMI = ("rocm-smi", "--showmeminfo", "vram", "--json")


def run_command(argv: Sequence[str]) -> str:
    """Run a query tool and return its stdout; raises when it is missing or fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=15, check=True)
    return done.stdout


def detect_gpus(run: CommandRunner = run_command) -> list[Gpu]:
    """GPUs that nvidia-smi or rocm-smi report; an empty list when neither answers (then ask for --vram)."""
    gpus = parse_nvidia_smi(_try(run, NVIDIA_SMI))
    return gpus + parse_rocm_smi(_try(run, ROCM_SMI), first_index=len(gpus))


def _try(run: CommandRunner, argv: Sequence[str]) -> str:
    try:
        return run(argv)
    except (OSError, subprocess.SubprocessError):
        return ""  # not installed, no driver, or timed out: no GPU of that kind


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Lines 'NVIDIA GeForce RTX 4070, 12282, 1034' (MiB, nounits); unreadable lines are skipped."""
    gpus: list[Gpu] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        used = int(parts[2]) if parts[2].isdigit() else 0  # "[N/A]" on some boards
        gpus.append(Gpu(len(gpus), parts[0], "nvidia", int(parts[1]) * MIB, used * MIB))
    return gpus


def parse_rocm_smi(text: str, *, first_index: int = 0) -> list[Gpu]:
    """``{"card0": {"VRAM Total Memory (B)": "...", "VRAM Total Used Memory (B)": "..."}}``."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return []
    gpus: list[Gpu] = []
    for card, fields in data.items() if isinstance(data, dict) else ():
        if not isinstance(fields, dict):
            continue
        total = str(fields.get("VRAM Total Memory (B)", ""))
        used = str(fields.get("VRAM Total Used Memory (B)", "0"))
        if total.isdigit():
            gpus.append(
                Gpu(
                    first_index + len(gpus),
                    f"AMD {card}",
                    "amd",
                    int(total),
                    int(used) if used.isdigit() else 0,
                )
            )
    return gpus


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
    _check_positive(
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
