"""How many requests run at once (``-j``), which is also how many slots the embedded engine gets.

``-j auto`` picks for the engine and the hardware:
- the embedded engine on a CPU: 4 slots. Decoding a small model is bound by memory bandwidth, and one
  pass over the weights serves every slot's next token, so throughput grows with slots although they
  share the cores (measured on 2 cores: -j 4 gave 1.65x the cases/s of -j 1, -j 2 only 1.06x); each
  slot adds its own KV cache of ``num_ctx`` tokens and latency per request grows.
- the embedded engine with a GPU: 8 slots, where batched decode stays nearly free until the GPU is
  compute-bound (KV memory: 8 x ``num_ctx`` tokens).
- an OpenAI-compatible llama.cpp server: its own slot count (``/props``); another server: 4.
- Ollama: ``OLLAMA_NUM_PARALLEL`` when set here (the server's own setting cannot be read), else 1.
Never more than the requests there are. Above -j 1, slots decode in shared batches, so replies at
temperature 0 can differ from run to run; -j 1 (the default) is reproducible.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from benchsel.errors import UsageError

__all__ = ["AUTO", "auto_backend_concurrency", "auto_engine_slots", "parse_concurrency"]

AUTO = "auto"
CPU_SLOTS = 4
GPU_SLOTS = 8
OTHER_SERVER_SLOTS = 4


def parse_concurrency(value: int | str) -> int | str:
    """An int of at least 1, or 'auto'."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"-j must be a number of at least 1 or 'auto', not '{value}'") from None
    if number < 1:
        raise UsageError("-j must be at least 1 (or 'auto')")
    return number


def _has_gpu() -> bool:
    with contextlib.suppress(Exception):
        from benchsel.hardware import detect_gpus

        return bool(detect_gpus())
    return False


def auto_engine_slots(requests: int) -> tuple[int, str]:
    """Slots for the embedded engine under ``-j auto``, and why."""
    slots, where = (GPU_SLOTS, "a GPU") if _has_gpu() else (CPU_SLOTS, "the CPU")
    chosen = max(1, min(slots, requests))
    return chosen, f"-j auto: {chosen} slots for the embedded engine on {where}"


def auto_backend_concurrency(backend: Any, model: str, requests: int) -> tuple[int, str]:
    """``-j auto`` for a server benchsel did not start."""
    if backend.name == "ollama":
        parallel = os.environ.get("OLLAMA_NUM_PARALLEL", "")
        slots = int(parallel) if parallel.isdigit() and int(parallel) > 0 else 1
        where = "OLLAMA_NUM_PARALLEL" if parallel.isdigit() else "Ollama's default"
    else:
        slots_for = getattr(backend, "slots_for", None)
        known = slots_for(model) if callable(slots_for) else None
        slots, where = (known, "the server's slots") if known else (OTHER_SERVER_SLOTS, "a default")
    chosen = max(1, min(slots, requests))
    return chosen, f"-j auto: {chosen} concurrent requests ({where})"
