"""LlamaServer: the command line, log parsing, and real llama-server processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import pid_alive

from benchsel.backends.engine import LlamaServer, _advice, parse_memory
from benchsel.errors import BackendUnavailable, UsageError

CPU_LOG = """\
load_tensors:   CPU_Mapped model buffer size =    94.88 MiB
llama_kv_cache:        CPU KV buffer size =   360.00 MiB
llama_context:        CPU  output buffer size =     0.75 MiB
llama_context:        CPU compute buffer size =   110.51 MiB
"""
GPU_LOG = """\
load_tensors:        CUDA0 model buffer size =  2000.00 MiB
load_tensors:   CPU_Mapped model buffer size =   100.00 MiB
llama_kv_cache:      CUDA0 KV buffer size =   512.00 MiB
llama_context:      CUDA0 compute buffer size =   300.00 MiB
llama_context:  CUDA_Host compute buffer size =    20.00 MiB
"""
MIB = 1024 * 1024


def test_parse_memory_sums_every_buffer() -> None:
    memory = parse_memory(CPU_LOG)
    assert memory is not None
    assert memory.total_bytes == sum(round(mib * MIB) for mib in (94.88, 360.0, 0.75, 110.51))
    assert memory.device_bytes == 0


def test_parse_memory_separates_gpu_buffers() -> None:
    memory = parse_memory(GPU_LOG)
    assert memory is not None
    assert memory.device_bytes == (2000 + 512 + 300) * MIB
    assert memory.total_bytes == (2000 + 100 + 512 + 300 + 20) * MIB


def test_parse_memory_counts_both_kv_caches_of_a_sliding_window_model() -> None:
    log = """\
0.00.888.114 I load_tensors:   CPU_Mapped model buffer size =   235.16 MiB
0.00.920.052 I llama_kv_cache_iswa: creating non-SWA KV cache, size = 4096 cells
0.00.920.216 I llama_kv_cache:        CPU KV buffer size =    12.00 MiB
0.00.944.759 I llama_kv_cache: size =   12.00 MiB (  4096 cells,   3 layers,  1/1 seqs)
0.00.949.442 I llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells
0.00.949.581 I llama_kv_cache:        CPU KV buffer size =    15.00 MiB
0.00.966.921 I sched_reserve:        CPU compute buffer size =    23.28 MiB
"""
    memory = parse_memory(log)
    assert memory is not None
    assert memory.total_bytes == int((235.16 + 12 + 15 + 23.28) * MIB)


def test_parse_memory_without_buffer_lines() -> None:
    assert parse_memory("main: server is listening on http://127.0.0.1:8080\n") is None


def test_command_line(tmp_path: Path) -> None:
    lora = tmp_path / "adapter.gguf"
    server = LlamaServer(
        tmp_path / "m.gguf", ctx=8192, slots=2, threads=3, lora=lora, extra_args=["--flash-attn", "on"]
    )
    args = server.command(Path("/bin/llama-server"), 8123)
    assert args[:3] == ["/bin/llama-server", "-m", str(tmp_path / "m.gguf")]
    joined = " ".join(args)
    for part in ("--host 127.0.0.1", "--port 8123", "-c 8192", "-np 2", "-t 3", f"--lora {lora}"):
        assert part in joined
    assert args[-2:] == ["--flash-attn", "on"]


def test_command_line_writes_the_chat_template(tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "m.gguf", chat_template="{{ messages }}")
    args = server.command(Path("llama-server"), 1)
    template = Path(args[args.index("--chat-template-file") + 1])
    assert "--jinja" in args
    assert template.read_text() == "{{ messages }}"
    template.unlink()


def test_missing_model_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        LlamaServer(tmp_path / "absent.gguf").start()


def test_pid_before_start() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = LlamaServer(Path("m.gguf")).pid


@pytest.mark.integration
def test_fixture_server_is_healthy_and_measured(smollm2_server: LlamaServer) -> None:
    assert httpx.get(f"{smollm2_server.base_url}/health", timeout=5).status_code == 200
    assert smollm2_server.load_s > 0
    assert smollm2_server.memory_bytes is not None
    # the weights alone are most of the 98 MB file; KV for 16k tokens adds more
    assert smollm2_server.memory_bytes > Path(smollm2_server.model_path).stat().st_size * 0.8
    props = httpx.get(f"{smollm2_server.base_url}/props", timeout=5).json()
    assert props["default_generation_settings"]["n_ctx"] == 4096


@pytest.mark.integration
def test_stop_ends_the_process(smollm2_path: Path) -> None:
    server = LlamaServer(smollm2_path, ctx=512)
    server.start()
    pid = server.pid
    assert pid_alive(pid)
    server.stop()
    assert not pid_alive(pid)
    assert not server.running
    server.stop()  # twice is harmless


@pytest.mark.integration
def test_exception_inside_with_stops_the_process(smollm2_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(ZeroDivisionError), LlamaServer(smollm2_path, ctx=512) as server:
        pids.append(server.pid)
        _ = 1 / 0
    assert not pid_alive(pids[0])


@pytest.mark.integration
def test_a_broken_model_file_reports_the_server_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(BackendUnavailable, match="exited with code") as caught:
        LlamaServer(broken).start()
    assert "Last lines of its log" in str(caught.value)


@pytest.mark.integration
def test_a_server_left_running_is_stopped_at_exit(smollm2_path: Path) -> None:
    script = (
        "import sys\nfrom pathlib import Path\nfrom benchsel.backends.engine import LlamaServer\n"
        "server = LlamaServer(Path(sys.argv[1]), ctx=512)\nserver.start()\nprint(server.pid)\n"
    )
    command = [sys.executable, "-c", script, str(smollm2_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    assert not pid_alive(int(done.stdout.strip()))


def test_relative_paths_reach_the_engine_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-server runs in a temporary working directory: a relative path would point nowhere there."""
    monkeypatch.chdir(tmp_path)
    server = LlamaServer(Path("m.gguf"), lora=Path("train-out") / "adapter.gguf")
    args = server.command(Path("/bin/llama-server"), 1)
    assert args[args.index("-m") + 1] == str(tmp_path / "m.gguf")
    assert args[args.index("--lora") + 1] == str(tmp_path / "train-out" / "adapter.gguf")


def test_a_file_the_engine_cannot_open_does_not_blame_the_install() -> None:
    assert "reinstall" not in _advice("llama_adapter_lora_init: failed to open 'adapter.gguf'")
    assert "LoRA adapter" in _advice("failed to apply lora adapter")
    assert "reinstall" in _advice("llama-server: error while loading shared libraries: libllama.so")


@pytest.mark.integration
def test_a_relative_model_path_starts(smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(smollm2_path.parent)
    with LlamaServer(Path(smollm2_path.name), ctx=512) as server:
        assert server.running


@pytest.mark.integration
def test_a_server_started_from_a_thread_outlives_the_thread(smollm2_path: Path) -> None:
    """The parent-death signal follows the thread that forked; servers are forked from one long-lived
    thread, so a runner worker that restarted a server can finish without taking it down."""
    server = LlamaServer(smollm2_path, ctx=512)
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join()
    try:
        time.sleep(1.0)
        assert server.running
        assert os.getsid(server.pid) == server.pid  # its own session: a terminal's Ctrl-C never reaches it
    finally:
        server.stop()
