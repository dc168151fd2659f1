"""Registering a fine-tune with Ollama: a merged GGUF (``FROM merged.gguf``, the default) or the base plus
the GGUF adapter (``ADAPTER``), with the base's template, stop parameters and licence.

The HTTP lives in :class:`benchsel.backends.ollama.OllamaBackend`; this module decides what to send.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from benchsel.digest import sha256_file
from benchsel.errors import UsageError

RegisterMode = Literal["merged", "adapter"]
REGISTER_MODES: tuple[str, ...] = ("merged", "adapter")
# Ollama's names: [namespace/]model[:tag], letters, digits, '.', '_' and '-' (no '+', no spaces).
_NAME = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$"
)


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

    def create_from_gguf(self, name: str, gguf_path: Path, digest: str, **fields: Any) -> None: ...


@dataclass(frozen=True)
class BaseServing:
    """How Ollama serves the base: its chat template, parameters (``stop`` tokens above all), licence."""

    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    license: str | None = None


def check_model_name(name: str) -> str:
    """``name`` when Ollama accepts it as a model name; a UsageError saying how to fix it otherwise."""
    if not _NAME.match(name):
        raise UsageError(
            f"--register {name!r}: not an Ollama model name - use letters, digits, '.', '_' and '-', "
            "with an optional :tag, e.g. my-extractor:v1"
        )
    return name


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
    """The template, parameters and licence Ollama serves ``base_tag`` with (``/api/show``)."""
    shown = host.show(base_tag)
    template = shown.get("template") or None
    licence = shown.get("license")
    if isinstance(licence, list):
        licence = "\n".join(str(part) for part in licence)
    return BaseServing(template, parse_parameters(str(shown.get("parameters") or "")), licence or None)


def sha256_digest(path: Path) -> str:
    return f"sha256:{sha256_file(path)}"


def register_adapter(
    host: AdapterHost,
    name: str,
    base_tag: str,
    adapter_gguf: Path,
    serving: BaseServing | None = None,
) -> str:
    """Create ``name`` in Ollama from ``base_tag`` + the GGUF adapter, with the base's template and
    parameters (a fine-tune served with another template answers garbage). Returns ``name``."""
    check_model_name(name)
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


def register_merged(host: AdapterHost, name: str, merged_gguf: Path, serving: BaseServing) -> str:
    """Create ``name`` in Ollama from a merged GGUF (base + adapter in one file), with the base's template,
    parameters and licence. Works on every Ollama version, unlike ``ADAPTER``. Returns ``name``."""
    check_model_name(name)
    merged_gguf = Path(merged_gguf)
    if not merged_gguf.is_file():
        raise UsageError(f"{merged_gguf}: no such merged model - merge it first (merge_gguf)")
    host.create_from_gguf(
        name,
        merged_gguf,
        sha256_digest(merged_gguf),
        template=serving.template,
        parameters=serving.parameters or None,
        license=serving.license,
    )
    return name


def create_command(name: str, modelfile: Path) -> str:
    """The ``ollama create`` command that registers the fine-tune by hand, later."""
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(str(modelfile))}"
