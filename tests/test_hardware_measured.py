"""The inference estimate against the buffers a real llama-server allocates for the demo models (CPU).

Tolerances (docs/vram.md, "Checked against llama-server"):
- KV cache: exact, up to the log's two decimals (0.005 MiB per buffer line).
- logits output buffer: exact, ``4 x vocab x slots``.
- compute buffer (with the output buffer): 3%. The fitted formula was within 0.2% at every point
  measured (SmolLM2 and Gemma 3 270M, 1-2 slots, 1024-8192 tokens, micro-batch 256 and 512; the rest is
  llama.cpp's small input tensors); 3% leaves room for another build's scheduler, yet is half the
  smallest term the formula adds (the masks, 6% of SmolLM2's buffer at 1024 tokens), so a dropped or
  doubled term fails.
- weights: 5%. The estimate is the file size; llama.cpp's model buffers hold the tensors only (no
  header or vocabulary: 1.7 MiB for SmolLM2, 6.2 MiB for Gemma's 262k tokens), and on a CPU it also
  copies some quantized tensors into a ``CPU_REPACK`` buffer in an interleaved layout (12.7 MiB for
  Gemma's Q4_K_M, none for SmolLM2's Q4_1) while the mapping still spans them. Each is under 5%.
- total: 5%. With KV exact, the total's relative error is a weighted mean of the parts' errors, so
  it cannot exceed the largest part tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchsel.backends.demo import demo_chat_template
from benchsel.backends.engine import LlamaServer
from benchsel.backends.ggufmeta import read_model_info
from benchsel.hardware import (
    MIB,
    estimate_inference_vram,
    llama_server_buffers,
    model_shape,
    parse_llama_server_memory,
)

pytestmark = pytest.mark.integration

LOG_ROUNDING_BYTES = MIB // 200 + 1  # the log prints MiB with two decimals; we round to a byte
COMPUTE_TOLERANCE = 0.03
WEIGHTS_TOLERANCE = 0.05
TOTAL_TOLERANCE = 0.05

# (demo model, num_ctx per slot, slots): small contexts keep the loads quick on a shared machine;
# Gemma at 2048 tokens keeps 15 of 18 layers to a 1024-cell window.
CASES = [
    ("smollm2:135m", 1024, 1),
    ("smollm2:135m", 1024, 2),
    ("gemma3:270m", 2048, 1),
    ("gemma3:270m", 2048, 2),
]


def load_log(path: Path, name: str, num_ctx: int, slots: int) -> tuple[str, int | None]:
    """Start llama-server as Ollama would (-c num_ctx x slots -np slots), on the CPU only."""
    with LlamaServer(
        path,
        ctx=num_ctx * slots,
        slots=slots,
        threads=1,
        chat_template=demo_chat_template(name),
        extra_args=["--device", "none"],
    ) as server:
        return server.log(), server.memory_bytes


@pytest.fixture
def model_path(request: pytest.FixtureRequest, smollm2_path: Path) -> Path:
    name = request.node.callspec.params["name"]
    return smollm2_path if name == "smollm2:135m" else request.getfixturevalue("gemma3_path")


@pytest.mark.parametrize(("name", "num_ctx", "slots"), CASES)
def test_estimate_matches_what_llama_server_allocates(
    model_path: Path, name: str, num_ctx: int, slots: int
) -> None:
    info = read_model_info(model_path)
    file_bytes = model_path.stat().st_size
    log, engine_total = load_log(model_path, name, num_ctx, slots)
    memory = parse_llama_server_memory(log)
    buffers = llama_server_buffers(log)
    estimate = estimate_inference_vram(
        info, file_size_bytes=file_bytes, num_ctx=num_ctx, parallel=slots, margin_bytes=0
    )
    assert memory.device_bytes == 0  # --device none: everything on the CPU, so no margin either

    kv_lines = sum(1 for b in buffers if b.kind == "KV")
    assert abs(memory.kv_cache_bytes - estimate.kv_cache_bytes) <= kv_lines * LOG_ROUNDING_BYTES

    vocab = model_shape(info).vocab_size
    assert vocab is not None
    assert abs(memory.output_bytes - 4 * vocab * slots) <= LOG_ROUNDING_BYTES

    measured_compute = memory.compute_buffer_bytes + memory.output_bytes
    assert estimate.compute_buffer_bytes == pytest.approx(measured_compute, rel=COMPUTE_TOLERANCE)

    mapped = sum(round(b.mib * MIB) for b in buffers if b.kind == "model" and b.device == "CPU_Mapped")
    assert mapped <= file_bytes  # the mapping spans the tensor data, never the header
    assert estimate.weights_bytes == pytest.approx(memory.model_bytes, rel=WEIGHTS_TOLERANCE)

    assert estimate.footprint_bytes == pytest.approx(memory.total_bytes, rel=TOTAL_TOLERANCE)
    # LlamaServer.memory_bytes comes from the same parser: equal up to per-line rounding
    assert engine_total is not None
    assert abs(engine_total - memory.total_bytes) <= len(buffers)
