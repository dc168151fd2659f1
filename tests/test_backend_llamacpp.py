"""The embedded backend: demo models, GGUF metadata, and real llama-server processes."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from benchsel.backends import ggufmeta
from benchsel.backends.base import Backend
from benchsel.backends.demo import DEMO_MODELS, demo_chat_template
from benchsel.backends.engine import LlamaServer
from benchsel.backends.ggufmeta import parameter_size, quantization_name, read_model_info
from benchsel.backends.llamacpp import LlamaCppBackend, resolve_model
from benchsel.backends.openai import OpenAIBackend
from benchsel.defaults import cache_dir
from benchsel.errors import ModelNotFound, UsageError
from benchsel.records import RequestOptions

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "maxLength": 20}},
    "required": ["colour"],
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHSEL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("count", "label"),
    [(134_515_008, "135M"), (268_098_176, "268M"), (2_300_000_000, "2.30B"), (12_000_000_000, "12.0B")],
)
def test_parameter_size_like_ollama(count: int, label: str) -> None:
    assert parameter_size(count) == label


def test_quantization_names() -> None:
    assert (quantization_name(3), quantization_name(15), quantization_name(7)) == ("Q4_1", "Q4_K_M", "Q8_0")
    assert quantization_name(None) is None


@pytest.mark.integration  # reads the demo GGUFs
def test_smollm2_metadata(smollm2_path: Path) -> None:
    info = read_model_info(smollm2_path)
    assert info["general.architecture"] == "llama"
    assert info["llama.block_count"] == 30
    assert info["llama.attention.head_count_kv"] == 3
    assert info["llama.vocab_size"] == 49152
    assert info["general.file_type"] == 3
    assert info["general.parameter_count"] == 134_515_008
    assert "tokenizer.ggml.tokens" not in info


@pytest.mark.integration  # reads the demo GGUFs
def test_gemma3_metadata_fills_vocab_size_from_the_token_list(gemma3_path: Path) -> None:
    info = read_model_info(gemma3_path)
    assert info["general.architecture"] == "gemma3"
    assert info["gemma3.vocab_size"] == 262144
    assert info["gemma3.attention.sliding_window"] == 512
    assert info["gemma3.attention.key_length"] == 256
    assert info["general.parameter_count"] == 268_098_176
    assert info["general.tags"][0] == "gemma3"  # arrays stay lists


@pytest.mark.integration  # reads the demo GGUFs
def test_metadata_is_cached_on_disk(smollm2_path: Path) -> None:
    ggufmeta._memory.clear()
    first = read_model_info(smollm2_path)
    files = list((cache_dir() / "gguf").glob("*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["model_info"] == first
    ggufmeta._memory.clear()
    assert read_model_info(smollm2_path) == first


def header_only_gguf(path: Path, architecture: str) -> Path:
    """A GGUF version 3 file with no tensors and one key, general.architecture."""
    key, value = b"general.architecture", architecture.encode()
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv)
    return path


def test_the_metadata_cache_holds_a_typed_entry_and_a_damaged_one_is_read_again(tmp_path: Path) -> None:
    path = header_only_gguf(tmp_path / "tiny.gguf", "tiny")
    ggufmeta._memory.clear()
    info = read_model_info(path)
    assert info == {"general.architecture": "tiny", "general.parameter_count": 0}
    [cached] = (cache_dir() / "gguf").glob("*.json")
    entry = json.loads(cached.read_text())
    assert set(entry) == {"path", "size", "mtime_ns", "version", "model_info"}  # no sha256 until asked
    assert ggufmeta.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads(cached.read_text())["sha256"] == ggufmeta.file_sha256(path)
    for damaged in ("{}", "not json", json.dumps({**entry, "version": 0})):
        cached.write_text(damaged)
        ggufmeta._memory.clear()
        assert read_model_info(path) == info
        assert json.loads(cached.read_text()) == entry  # parsed again and written back whole


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"nope" * 10)
    with pytest.raises(UsageError, match="not a GGUF file"):
        read_model_info(path)


@pytest.mark.integration  # reads the demo GGUFs
def test_resolve_demo_and_path(smollm2_path: Path) -> None:
    assert resolve_model("smollm2:135m") == (smollm2_path, None)
    assert resolve_model(str(smollm2_path)) == (smollm2_path, None)
    path, template = resolve_model("gemma3:270m")
    assert path.name.endswith(".gguf")
    assert template == demo_chat_template("gemma3:270m")
    assert template and "<start_of_turn>" in template


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ModelNotFound) as caught:
        resolve_model("llama3:8b")
    message = str(caught.value)
    assert all(name in message for name in DEMO_MODELS)
    assert "a path to a .gguf file" in message


@pytest.mark.integration  # reads the demo GGUFs
def test_describe_without_a_server(smollm2_path: Path) -> None:
    backend = LlamaCppBackend()
    assert isinstance(backend, Backend)
    snapshot = backend.describe("smollm2:135m")
    assert snapshot.backend == "llamacpp"
    assert snapshot.family == "llama"
    assert snapshot.parameter_size == "135M"
    assert snapshot.quantization == "Q4_1"
    assert snapshot.context_length == 8192
    assert snapshot.size_bytes == smollm2_path.stat().st_size
    assert len(snapshot.digest) == 64
    assert snapshot.model_info["llama.embedding_length"] == 576
    assert backend.memory("smollm2:135m") is None
    assert not snapshot.thinks


@pytest.mark.integration
def test_load_chat_memory_unload() -> None:
    backend = LlamaCppBackend(slots=2)
    options = RequestOptions(num_ctx=1024, num_predict=16, format="schema")
    try:
        load_s = backend.load("smollm2:135m", options)
        server = backend.server("smollm2:135m")
        assert server is not None
        pid = server.pid
        assert load_s == server.load_s > 0
        memory = backend.memory("smollm2:135m")
        assert memory is not None and memory.source == "llama-server log"
        assert memory.size_bytes == server.memory_bytes
        # a CPU-only engine measures RAM: no VRAM figure (hardware.vram_figure lets the estimate decide)
        assert memory.vram_bytes_measured == (server.device_memory_bytes or None)
        messages = [{"role": "user", "content": "Name a colour as JSON."}]
        reply = backend.chat("smollm2:135m", messages, options, SCHEMA)
        assert reply.timing_source == "server"
        assert 0 < reply.eval_count <= 16
    finally:
        backend.close()
    assert backend.server("smollm2:135m") is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.integration
def test_gemma3_answers_through_the_supplied_template(gemma3_server: LlamaServer) -> None:
    backend = OpenAIBackend(gemma3_server.base_url)
    messages = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "What colour is the sky?"},
    ]
    try:
        reply = backend.chat("gemma3:270m", messages, RequestOptions(num_predict=12))
    finally:
        backend.close()
    assert reply.eval_count > 0
    assert reply.content.strip()
    assert "<start_of_turn>" not in reply.content
