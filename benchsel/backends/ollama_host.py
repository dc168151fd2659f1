"""Where Ollama is: ``--host`` or OLLAMA_HOST read as Ollama reads it, and checked."""

from __future__ import annotations

import os

from benchsel.backends.http import check_url

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "resolve_host"]

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
_SCHEME_PORTS = {"http": 80, "https": 443}


def resolve_host(host: str | None = None) -> str:
    """The base URL for ``host`` or OLLAMA_HOST, as Ollama reads it: a bare host gets port 11434.
    A malformed value is a UsageError that names where it came from."""
    source = "--host" if host else "OLLAMA_HOST"
    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip().rstrip("/")
    if not raw:
        return DEFAULT_HOST
    has_scheme = "://" in raw
    fix = "write HOST, HOST:PORT or http://HOST:PORT, e.g. http://127.0.0.1:11434"
    if source == "OLLAMA_HOST":
        fix += ", or unset OLLAMA_HOST"
    scheme, hostname, port, path = check_url(raw if has_scheme else f"http://{raw}", source, fix, shown=raw)
    if ":" in hostname:
        hostname = f"[{hostname}]"
    port = port or (_SCHEME_PORTS[scheme] if has_scheme else DEFAULT_PORT)
    return f"{scheme}://{hostname}:{port}{path.rstrip('/')}"
