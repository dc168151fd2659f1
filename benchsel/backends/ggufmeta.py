"""GGUF metadata in the shape of Ollama's /api/show ``model_info``, read straight from the file header.

Reading is cached per (path, size, mtime) in memory and as small JSON files under the cache directory,
because walking a large vocabulary (Gemma's 262k tokens) is slow. The file's sha256 is cached the same way.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from benchsel.defaults import cache_dir
from benchsel.digest import sha256_file
from benchsel.errors import UsageError
from benchsel.records import ModelSnapshot

__all__ = [
    "file_sha256",
    "parameter_size",
    "quantization_name",
    "read_model_info",
    "snapshot_from_gguf",
]

_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALARS.update({10: "<Q", 11: "<q", 12: "<d"})
_STRING, _ARRAY = 8, 9
# Tokenizer arrays: huge and useless for sizing; the token list's length becomes <arch>.vocab_size.
_DROPPED_ARRAYS = frozenset(
    ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"]
)
_CACHE_VERSION = 1

# llama.cpp's llama_ftype numbers (general.file_type) -> the names Ollama shows as quantization_level.
_FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip

_memory: dict[tuple[str, int, int], _CacheEntry] = {}
_lock = threading.Lock()


def quantization_name(file_type: int | None) -> str | None:
    """``general.file_type`` as a name such as "Q4_K_M"; None when unknown."""
    return None if file_type is None else _FILE_TYPES.get(file_type)


def parameter_size(count: int | None) -> str | None:
    """A parameter count the way Ollama prints it: 134515008 -> "135M", 2300000000 -> "2.30B"."""
    if not count:
        return None
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if count >= scale:
            number = count / scale
            digits = 0 if number >= 100 else 1 if number >= 10 else 2
            return f"{number:.{digits}f}{unit}"
    return f"{count // 1000}K" if count >= 1000 else str(count)


def read_model_info(path: Path) -> dict[str, Any]:
    """GGUF key/values of ``path`` as Ollama's ``model_info``, with ``general.parameter_count`` filled in."""
    return dict(_cached(Path(path)).model_info)


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file, computed once per (path, size, mtime)."""
    entry = _cached(Path(path))
    if entry.sha256 is None:
        entry.sha256 = sha256_file(path)
        _save(entry)
    return entry.sha256


def snapshot_from_gguf(name: str, path: Path, *, backend: str) -> ModelSnapshot:
    """A ModelSnapshot of a local GGUF file: digest is the file's sha256, the rest its metadata."""
    info = read_model_info(path)
    arch = info.get("general.architecture")
    count = info.get("general.parameter_count")
    file_type = info.get("general.file_type")
    context = info.get(f"{arch}.context_length")
    return ModelSnapshot(
        name=name,
        backend=backend,
        digest=file_sha256(path),
        family=str(arch) if arch else None,
        parameter_size=parameter_size(count),
        parameter_count=int(count) if count else None,
        quantization=quantization_name(file_type),
        file_type=int(file_type) if file_type is not None else None,
        capabilities=_capabilities(info),
        context_length=int(context) if context else None,
        size_bytes=Path(path).stat().st_size,
        model_info=info,
    )


def _capabilities(info: dict[str, Any]) -> tuple[str, ...]:
    template = str(info.get("tokenizer.chat_template") or "")
    thinks = "<think>" in template or "enable_thinking" in template
    return ("completion", "thinking") if thinks else ("completion",)


def _key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        reason = f"cannot read GGUF file {path}: {exc.strerror}"
        raise UsageError(f"{reason} - pass a path to a .gguf file") from exc
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _cache_file(key: tuple[str, int, int]) -> Path:
    name = hashlib.sha1(key[0].encode()).hexdigest()[:20]
    return cache_dir() / "gguf" / f"{name}.json"


class _CacheEntry(BaseModel):
    """One cache file: the metadata (and, once asked for, the sha256) of the GGUF at ``path`` as it
    was at ``size`` and ``mtime_ns``."""

    path: str
    size: int
    mtime_ns: int
    version: int
    model_info: dict[str, Any]
    sha256: str | None = None

    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.mtime_ns)


def _cached(path: Path) -> _CacheEntry:
    key = _key(path)
    with _lock:
        if key in _memory:
            return _memory[key]
        entry = _load(key)
        if entry is None:
            entry = _CacheEntry(
                path=key[0], size=key[1], mtime_ns=key[2], version=_CACHE_VERSION, model_info=_parse(path)
            )
            _save(entry)
        _memory[key] = entry
        return entry


def _load(key: tuple[str, int, int]) -> _CacheEntry | None:
    """The cache file of ``key``; None when there is none, or it is unreadable, stale or another version's."""
    try:
        entry = _CacheEntry.model_validate(json.loads(_cache_file(key).read_text()))
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None
    return entry if entry.key() == key and entry.version == _CACHE_VERSION else None


def _save(entry: _CacheEntry) -> None:
    target = _cache_file(entry.key())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(entry.model_dump(exclude_none=True)))
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only home only costs speed


class _Reader:
    """Sequential little-endian reads over a memory map of the GGUF header."""

    def __init__(self, buffer: mmap.mmap, path: Path) -> None:
        self.buffer, self.pos, self.path = buffer, 0, path

    def unpack(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from(fmt, self.buffer, self.pos)
        except struct.error as exc:
            raise UsageError(f"{self.path} is truncated or not a GGUF file") from exc
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        raw = self.buffer[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            return [self.value(item_kind) for _ in range(count)]
        if kind not in _SCALARS:
            raise UsageError(f"{self.path}: unknown GGUF value type {kind}")
        return self.unpack(_SCALARS[kind])

    def array_length(self) -> int:
        """Skip an array value, returning its length (fast path for the tokenizer lists)."""
        item_kind, count = self.unpack("<I"), self.unpack("<Q")
        if item_kind in _SCALARS:
            self.pos += count * struct.calcsize(_SCALARS[item_kind])
        else:
            for _ in range(count):
                self.value(item_kind)
        return int(count)


def _parse(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        if buffer[:4] != b"GGUF":
            raise UsageError(f"{path} is not a GGUF file (bad magic) - pass a path to a .gguf file")
        reader = _Reader(buffer, path)
        reader.pos = 4
        version = reader.unpack("<I")
        if version < 2:
            raise UsageError(f"{path} is GGUF version {version}; only version 2 and later are supported")
        tensor_count, kv_count = reader.unpack("<Q"), reader.unpack("<Q")
        info, lengths = _read_kv(reader, kv_count)
        elements = _tensor_elements(reader, tensor_count)
    arch = info.get("general.architecture")
    if arch and f"{arch}.vocab_size" not in info and "tokenizer.ggml.tokens" in lengths:
        info[f"{arch}.vocab_size"] = lengths["tokenizer.ggml.tokens"]
    info.setdefault("general.parameter_count", elements)
    return info


def _read_kv(reader: _Reader, kv_count: int) -> tuple[dict[str, Any], dict[str, int]]:
    info: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(kv_count):
        key, kind = reader.string(), reader.unpack("<I")
        if kind == _ARRAY and key in _DROPPED_ARRAYS:
            lengths[key] = reader.array_length()
        else:
            info[key] = reader.value(kind)
    return info, lengths


def _tensor_elements(reader: _Reader, tensor_count: int) -> int:
    total = 0
    for _ in range(tensor_count):
        reader.string()
        dims = [reader.unpack("<Q") for _ in range(reader.unpack("<I"))]
        reader.unpack("<I")  # type
        reader.unpack("<Q")  # offset
        count = 1
        for dim in dims:
            count *= dim
        total += count
    return total
