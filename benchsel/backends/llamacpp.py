"""The embedded backend: benchsel starts its own llama-server for a GGUF file or a demo model."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchsel.backends.demo import DEMO_MODELS, demo_chat_template, demo_model_path
from benchsel.backends.engine import LlamaServer
from benchsel.backends.ggufmeta import file_sha256, snapshot_from_gguf
from benchsel.backends.openai import OpenAIBackend
from benchsel.errors import ModelNotFound
from benchsel.records import Memory, ModelSnapshot, Reply, RequestOptions

__all__ = ["LlamaCppBackend", "resolve_model"]


def resolve_model(model: str, tried_ollama: str | None = None) -> tuple[Path, str | None]:
    """The GGUF file behind a model name (a demo name or a path) and the chat template to supply.
    ``tried_ollama`` says what the auto backend found at OLLAMA_HOST before falling back to this engine."""
    if model in DEMO_MODELS:
        return demo_model_path(model), demo_chat_template(model)
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path, None
    known = ", ".join(DEMO_MODELS)
    if path.suffix == ".gguf":
        raise ModelNotFound(f"model file '{model}' does not exist - give the path to a .gguf file")
    if tried_ollama is not None:
        raise ModelNotFound(
            f"model '{model}' needs Ollama, but {tried_ollama} - start Ollama (`ollama serve`) or set "
            f"OLLAMA_HOST to where it runs; or use a demo model ({known}) or a path to a .gguf file "
            "with the embedded engine"
        )
    raise ModelNotFound(f"model '{model}' is neither a demo model ({known}) nor a path to a .gguf file")


class _Served:
    def __init__(self, server: LlamaServer, client: OpenAIBackend) -> None:
        self.server, self.client = server, client


def adapter_name(lora: Path) -> str:
    """A short name of a GGUF adapter: its file name, or its folder's for ``adapter.gguf``."""
    lora = Path(lora)
    return lora.resolve().parent.name if lora.stem == "adapter" else lora.stem


def lora_model_name(model: str, lora: Path, name: str | None = None) -> str:
    """``BASE+NAME``: how a base served with an adapter is named in runs (``name`` or the adapter's)."""
    suffix = "+" + (name or adapter_name(lora))
    return model if model.endswith(suffix) else model + suffix


class LlamaCppBackend:
    """Serves each model with its own llama-server process, started on load() (or the first chat())."""

    name = "llamacpp"

    def __init__(
        self,
        threads: int | None = None,
        slots: int = 1,
        ctx: int | None = None,
        lora: Path | None = None,
        *,
        tried_ollama: str | None = None,
    ) -> None:
        self.threads, self.slots, self.ctx, self.lora = threads, slots, ctx, lora
        self.threads_reason = "given" if threads else ""
        self.tried_ollama = tried_ollama
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()

    def describe(self, model: str) -> ModelSnapshot:
        path, _ = resolve_model(self._base(model), self.tried_ollama)
        snapshot = snapshot_from_gguf(model, path, backend=self.name)
        if self.lora is None:
            return snapshot
        # the adapter changes the answers: fold it into the digest so cached base replies never match
        return replace(snapshot, digest=f"{snapshot.digest}+lora:{file_sha256(Path(self.lora))}")

    def load(self, model: str, options: RequestOptions) -> float:
        return self._serve(model, options).server.load_s

    def chat(
        self,
        model: str,
        messages: list[dict[str, str]],
        options: RequestOptions,
        schema: dict[str, Any] | None = None,
    ) -> Reply:
        return self._serve(model, options).client.chat(model, messages, options, schema)

    def slots_for(self, model: str) -> int | None:
        """The engine's slot count: requests can be pinned to one (``id_slot``)."""
        return self.slots

    def memory(self, model: str) -> Memory | None:
        served = self._served.get(model)
        if served is None or served.server.memory_bytes is None:
            return None
        server = served.server
        # 0 bytes on a GPU on a CPU-only engine: the figure is RAM, never used as VRAM (hardware.vram_figure)
        return Memory(server.memory_bytes or 0, server.device_memory_bytes or 0, source="llama-server log")

    def unload(self, model: str) -> None:
        with self._lock:
            served = self._served.pop(model, None)
        if served is not None:
            served.client.close()
            served.server.stop()

    def abort(self) -> None:
        for served in list(self._served.values()):
            served.client.abort()

    def close(self) -> None:
        for model in list(self._served):
            self.unload(model)

    @property
    def engine_threads(self) -> int:
        """Threads of every engine this backend starts; chosen once, on the first start."""
        if not self.threads:
            from benchsel.contention import default_threads, other_load_cores

            self.threads, self.threads_reason = default_threads(other_load_cores())
        return self.threads

    def server(self, model: str) -> LlamaServer | None:
        """The running server of ``model``, if any."""
        served = self._served.get(model)
        return served.server if served else None

    def _base(self, model: str) -> str:
        """The base of ``BASE+NAME`` (a model served with the adapter, see lora_model_name)."""
        return model.rsplit("+", 1)[0] if self.lora is not None and "+" in model else model

    def _context(self, options: RequestOptions) -> int:
        # llama-server splits -c across its slots; each slot gets the request's num_ctx
        return self.ctx if self.ctx is not None else options.num_ctx * self.slots

    def _serve(self, model: str, options: RequestOptions) -> _Served:
        with self._lock:
            served = self._served.get(model)
            if served is not None and served.server.running and served.server.ctx == self._context(options):
                return served
            if served is not None:  # another context or a dead process: start afresh, as Ollama reloads
                served.client.close()
                served.server.stop()
            path, template = resolve_model(self._base(model), self.tried_ollama)
            server = LlamaServer(
                path,
                ctx=self._context(options),
                slots=self.slots,
                threads=self.engine_threads,
                chat_template=template,
                lora=self.lora,
            )
            server.start()
            served = _Served(server, OpenAIBackend(server.base_url, api_key_env=""))
            self._served[model] = served
            return served
