"""Memory measured on the CPU is RAM: labelled so, never used as VRAM; the estimate decides."""

from __future__ import annotations

from pathlib import Path

from helpers import run_record
from model_infos import GEMMA3_4B as GEMMA3_4B_INFO
from test_selection import CASES, RUN_ID, add_model, answer, gemma3_4b, reply, snapshot, write_evalset

from benchsel.evalset import load_evalset
from benchsel.hardware import (
    DEFAULT_GPU_MARGIN_BYTES,
    GIB,
    MIB,
    MeasuredVram,
    estimate_inference_vram,
    vram_figure,
)
from benchsel.records import Memory
from benchsel.report.selection_view import measured_vram
from benchsel.selection import Constraints, select
from benchsel.store import Store
from benchsel.summary import summarize_run

CPU_FIGURE = round(200.9 * MIB)  # what llama-server logged for smollm2:135m on a machine with no GPU


def test_memory_record_tells_vram_from_ram() -> None:
    cpu = Memory(CPU_FIGURE, 0, "llama-server log")
    assert cpu.vram_bytes_measured is None and cpu.ram_bytes_measured == CPU_FIGURE
    # a run stored before the fix recorded a CPU-only llama-server as None: read as RAM too
    legacy = Memory(CPU_FIGURE, None, "llama-server log")
    assert legacy.size_vram_bytes == 0 and legacy.vram_bytes_measured is None
    gpu = Memory(3 * GIB, 3 * GIB, "ollama /api/ps")
    assert gpu.vram_bytes_measured == 3 * GIB and gpu.ram_bytes_measured is None
    spilled = Memory(3 * GIB, 2 * GIB, "ollama /api/ps")
    assert spilled.vram_bytes_measured == 2 * GIB and spilled.ram_bytes_measured == GIB
    ollama_cpu = Memory(3 * GIB, 0, "ollama /api/ps")
    assert ollama_cpu.vram_bytes_measured is None and ollama_cpu.ram_bytes_measured == 3 * GIB


def test_a_cpu_figure_never_beats_the_estimate() -> None:
    estimate = estimate_inference_vram(GEMMA3_4B_INFO, file_size_bytes=3_338_801_804)
    on_cpu = MeasuredVram(CPU_FIGURE, 0, "llama-server log")
    figure = vram_figure(estimate, on_cpu)
    assert figure.bytes_needed == estimate.total_bytes  # margin included
    assert figure.measured_bytes is None
    assert figure.label == "estimated (200.9 MiB measured in RAM on the CPU, not VRAM)"
    # no estimate: the RAM figure stands in with the GPU margin added, and says so
    alone = vram_figure(None, on_cpu)
    assert alone.bytes_needed == CPU_FIGURE + DEFAULT_GPU_MARGIN_BYTES
    assert "RAM measured on the CPU" in alone.label and "margin" in alone.label
    # measured on a GPU still wins
    on_gpu = MeasuredVram(CPU_FIGURE, CPU_FIGURE, "llama-server log")
    assert vram_figure(estimate, on_gpu).bytes_needed == CPU_FIGURE


def test_selection_decides_with_the_estimate_and_flags_the_cpu_measurement(tmp_path: Path) -> None:
    evalset = load_evalset(write_evalset(tmp_path / "evalset"))
    db = tmp_path / "benchsel.sqlite"
    with Store(db) as store:
        store.create_run(
            run_record(
                ("gemma3:4b",),
                evalset,
                run_id=RUN_ID,
                created_at="2025-01-01T00:00:00+00:00",
                backend="llamacpp",
                host="local",
                options={"num_ctx": 4096},
                status="done",
            )
        )
        snap = snapshot(
            "gemma3:4b",
            GEMMA3_4B_INFO,
            size=3_338_801_804,
            quant="Q4_K_M",
            params=4_300_079_472,
            vision=False,
        )
        replies = [reply(answer(i, gemma3_4b(i)), 10.0) for i in range(CASES)]
        add_model(
            store, [c.id for c in evalset.cases], snap, replies, Memory(CPU_FIGURE, 0, "llama-server log")
        )
        summary = summarize_run(store, RUN_ID)
    estimate = estimate_inference_vram(GEMMA3_4B_INFO, file_size_bytes=3_338_801_804)
    entry = select(summary, Constraints(vram_bytes=8 * GIB)).deploy_now.entries[0]
    assert entry.vram is not None
    assert entry.vram.bytes_needed == estimate.total_bytes
    assert entry.vram.label.startswith("estimated (200.9 MiB measured in RAM on the CPU")
    assert "on the CPU when measured (nothing in VRAM)" in entry.flags, entry.flags
    # the report's memory plot without a selection shows no measured VRAM bar for it
    assert measured_vram(summary)[0].measured_bytes is None
