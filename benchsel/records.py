"""The records every layer shares: what a request asks for, what a model is, how much memory it took,
what came back, and the cold prefill of a primed prompt; and the reading of a server's reply fields into
them. Values only: no I/O, no imports of benchsel."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ColdPrefill",
    "FormatMode",
    "Memory",
    "ModelSnapshot",
    "Reply",
    "RequestOptions",
    "ThinkMode",
    "TimingSource",
    "reply_count",
    "reply_text",
    "storable_text",
]

FormatMode = Literal["none", "json", "schema"]
ThinkMode = Literal["auto", "off", "on"]
TimingSource = Literal["server", "wall"]


@dataclass(frozen=True)
class RequestOptions:
    """Options fixed for every request to one model (changing them between requests reloads it)."""

    temperature: float = 0.0
    seed: int = 42
    num_ctx: int = 4096
    num_predict: int = 1024
    format: FormatMode = "none"
    think: ThinkMode = "auto"
    timeout_s: float = 300.0
    # Reuse the KV cache of a shared prompt prefix (llama.cpp's cache_prompt); see benchsel.prefix_cache.
    prompt_cache: bool = True
    # llama.cpp: the slot one request is pinned to, set per request by benchsel.prefix_cache (the
    # answer does not depend on it, so it is not part of as_dict and the cache key).
    slot: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "seed": self.seed,
            "num_ctx": self.num_ctx,
            "num_predict": self.num_predict,
            "format": self.format,
            "think": self.think,
            "prompt_cache": self.prompt_cache,
        }


@dataclass(frozen=True)
class ModelSnapshot:
    """What a backend knows about a model at run time; stored with the run."""

    name: str
    backend: str
    digest: str
    family: str | None = None
    parameter_size: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    file_type: int | None = None
    capabilities: tuple[str, ...] = ()
    context_length: int | None = None
    size_bytes: int | None = None
    server_version: str | None = None
    # GGUF key/values as Ollama's /api/show "model_info" gives them (arrays may be kept whole);
    # what hardware.estimate_inference_vram reads.
    model_info: dict[str, Any] = field(default_factory=dict)
    has_projector: bool = False

    @property
    def thinks(self) -> bool:
        return "thinking" in self.capabilities


@dataclass(frozen=True)
class Memory:
    """Memory a loaded model occupies, as the server reports it (Ollama: /api/ps). ``size_vram_bytes``
    is the part on a GPU: 0 when the model ran entirely on the CPU, None when the server did not say."""

    size_bytes: int
    size_vram_bytes: int | None
    source: str

    def __post_init__(self) -> None:
        # Runs stored before 0.1.1 recorded a CPU-only llama-server as None; it meant 0 bytes on a GPU.
        if self.size_vram_bytes is None and self.source == "llama-server log":
            object.__setattr__(self, "size_vram_bytes", 0)

    @property
    def vram_bytes_measured(self) -> int | None:
        """Bytes measured on a GPU; None when the model ran on the CPU (then the figure is RAM)."""
        if self.size_vram_bytes is None:
            return self.size_bytes  # the server gave no split: Ollama's /api/ps reports VRAM
        return self.size_vram_bytes or None

    @property
    def ram_bytes_measured(self) -> int | None:
        """Bytes measured in host memory (CPU): the whole size on a CPU-only machine, the spilled part
        of a partly offloaded model, None when nothing was in RAM or the split is unknown."""
        if self.size_vram_bytes is None:
            return None
        return max(0, self.size_bytes - self.size_vram_bytes) or None


@dataclass(frozen=True)
class Reply:
    """One answer, with every count and duration the server gave (durations in nanoseconds)."""

    content: str
    thinking: str = ""
    done_reason: str | None = None
    prompt_eval_count: int = 0
    prompt_eval_duration_ns: int = 0
    eval_count: int = 0
    eval_duration_ns: int = 0
    load_duration_ns: int = 0
    total_duration_ns: int = 0
    wall_s: float = 0.0
    timing_source: TimingSource = "server"

    @property
    def truncated(self) -> bool:
        return self.done_reason in ("length", "incomplete")


# A prefill shorter than this is too short to time as a rate.
MIN_COLD_TOKENS = 16


@dataclass(frozen=True)
class ColdPrefill:
    """Prefill of the warm-up prompt with nothing cached (summed over the slots primed)."""

    tokens: int
    duration_ns: int

    @property
    def tokens_per_s(self) -> float | None:
        if self.tokens < MIN_COLD_TOKENS or self.duration_ns <= 0:
            return None
        return self.tokens / self.duration_ns * 1e9


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` as UTF-8 can hold it: a surrogate pair split across two pieces of a stream is joined into
    its character, and each lone surrogate (JSON may escape one, ``"\\ud800"``) is marked as U+FFFD;
    everything else is kept as is."""
    if not _LONE_SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def reply_text(value: Any) -> str:
    """A reply field as text, whatever the server put there: a string as is, nothing as "", and an
    object, list or number as its JSON, so that the model's output is stored and scored, never dropped."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return storable_text(value)


def reply_count(value: Any) -> int:
    """A token count or duration from a server's reply; anything that is not a finite number is 0."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return int(number) if number == number and abs(number) != float("inf") else 0
