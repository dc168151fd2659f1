"""Choosing a backend: Ollama, any OpenAI-compatible server, or benchsel's own llama-server."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx

from benchsel.backends.base import Backend
from benchsel.errors import UsageError

__all__ = ["BackendKind", "make_backend", "ollama_answers", "probe_ollama"]

BackendKind = Literal["auto", "ollama", "openai", "llamacpp"]
KINDS: tuple[str, ...] = ("auto", "ollama", "openai", "llamacpp")
PROBE_TIMEOUT_S = 1.0


def ollama_answers(host: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when an Ollama server answers ``/api/version`` at ``host`` (default: OLLAMA_HOST)."""
    return probe_ollama(host, timeout_s) is None


def probe_ollama(host: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when Ollama answers at ``host`` (default: OLLAMA_HOST), else what was found there, for a
    message ("no server answers at http://127.0.0.1:11434"). A malformed host is a UsageError."""
    from benchsel.backends.ollama_host import resolve_host

    url = resolve_host(host)
    try:
        response = httpx.get(f"{url}/api/version", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"no Ollama answers at {url} ({type(exc).__name__})"
    try:
        if response.status_code == 200 and "version" in response.json():
            return None
    except (ValueError, TypeError):
        pass
    return f"the server at {url} is not Ollama (HTTP {response.status_code} on /api/version)"


def make_backend(
    kind: str = "auto",
    *,
    host: str | None = None,
    base_url: str | None = None,
    threads: int | None = None,
    slots: int = 1,
    ctx: int | None = None,
    lora: Path | None = None,
) -> Backend:
    """The backend ``kind`` names. ``auto``: an OpenAI-compatible server when ``base_url`` is given,
    else Ollama when it answers at ``host`` / OLLAMA_HOST, else benchsel's own llama-server."""
    if kind not in KINDS:
        raise UsageError(f"unknown backend '{kind}' - use one of {', '.join(KINDS)}")
    not_ollama = None
    if kind == "auto" and base_url:
        kind = "openai"
    elif kind == "auto":
        not_ollama = probe_ollama(host)
        kind = "llamacpp" if not_ollama else "ollama"
    if kind == "ollama":
        from benchsel.backends.ollama import OllamaBackend

        return OllamaBackend(host)
    if kind == "openai":
        if not base_url:
            raise UsageError("the openai backend needs a server URL - pass --base-url http://HOST:PORT/v1")
        from benchsel.backends.openai import OpenAIBackend

        return OpenAIBackend(base_url)
    from benchsel.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(threads=threads, slots=slots, ctx=ctx, lora=lora, tried_ollama=not_ollama)


def served_models(backend: Backend, kind: str) -> list[str]:
    """The models a backend can serve: its own list (Ollama's), or the demo models for the embedded
    engine; a backend that cannot list them is a usage error."""
    lister = getattr(backend, "list_models", None)
    if callable(lister):
        return list(lister())
    if kind == "llamacpp" or getattr(backend, "name", "") == "llamacpp":
        from benchsel.backends.demo import DEMO_MODELS

        return list(DEMO_MODELS)
    raise UsageError(
        f"the {kind} backend cannot list its models - pass model names to `benchsel run --models`"
    )
