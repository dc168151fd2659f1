"""Training: data, LoRA/QLoRA with peft + trl, GGUF adapter export, registration with Ollama.

Everything heavy (torch, transformers, peft, trl) is imported inside the functions that need it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "ResolvedBase": "benchsel.train.base",
    "resolve_base": "benchsel.train.base",
    "TrainSettings": "benchsel.train.lora",
    "TrainResult": "benchsel.train.lora",
    "train_lora": "benchsel.train.lora",
    "merge_and_save": "benchsel.train.lora",
    "export_gguf_adapter": "benchsel.train.export",
    "export_base_gguf": "benchsel.train.export",
    "write_modelfile": "benchsel.train.export",
    "build_tiny_llama": "benchsel.train.tiny",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'benchsel.train' has no attribute {name!r}")
    return getattr(import_module(module), name)
