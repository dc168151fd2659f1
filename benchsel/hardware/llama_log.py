"""The memory buffers a llama-server (llama.cpp) log reports at load time: the one parser of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchsel.errors import UsageError
from benchsel.hardware.units import MIB
from benchsel.hardware.vram import MeasuredVram

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
