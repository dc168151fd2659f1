"""Registering a fine-tune with Ollama: the base's template and parameters, the GGUF adapter, the name.

The HTTP lives in :class:`benchsel.backends.ollama.OllamaBackend`; this module decides what to send.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchsel.errors import UsageError


class AdapterHost(Protocol):
    """What registration needs from an Ollama backend."""

    def show(self, model: str) -> dict[str, Any]: ...

    def create_with_adapter(
        self,
        name: str,
        base: str,
        adapter_path: Path,
        adapter_digest: str,
        template: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class BaseServing:
    """How Ollama serves the base: its chat template and parameters (``stop`` tokens above all)."""

    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def parse_parameters(text: str) -> dict[str, Any]:
    """Ollama's ``/api/show`` ``parameters`` text (``stop "<|im_end|>"`` per line) as a dict;
    repeated keys (``stop``) become lists, numbers become numbers."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, raw = line.strip().partition(" ")
        if not key or not raw.strip():
            continue
        value = _value(raw.strip())
        if key == "stop":
            out.setdefault("stop", []).append(value)
        else:
            out[key] = value
    return out


def _value(raw: str) -> Any:
    if raw.startswith('"'):
        try:
            return json.loads(raw)
        except ValueError:
            return raw.strip('"')
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return raw


def base_serving(host: AdapterHost, base_tag: str) -> BaseServing:
    """The template and parameters Ollama serves ``base_tag`` with (``/api/show``)."""
    shown = host.show(base_tag)
    template = shown.get("template") or None
    return BaseServing(template, parse_parameters(str(shown.get("parameters") or "")))


def sha256_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def register_adapter(
    host: AdapterHost,
    name: str,
    base_tag: str,
    adapter_gguf: Path,
    serving: BaseServing | None = None,
) -> str:
    """Create ``name`` in Ollama from ``base_tag`` + the GGUF adapter, with the base's template and
    parameters (a fine-tune served with another template answers garbage). Returns ``name``."""
    if not name.strip() or any(ch.isspace() for ch in name):
        raise UsageError(f"--register {name!r}: an Ollama model name has no spaces, e.g. my-extractor:v1")
    adapter_gguf = Path(adapter_gguf)
    if not adapter_gguf.is_file():
        raise UsageError(f"{adapter_gguf}: no such adapter - export it first (export_gguf_adapter)")
    serving = serving or base_serving(host, base_tag)
    host.create_with_adapter(
        name,
        base_tag,
        adapter_gguf,
        sha256_digest(adapter_gguf),
        template=serving.template,
        parameters=serving.parameters or None,
    )
    return name
