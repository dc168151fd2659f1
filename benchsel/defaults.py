"""Default values in one place: options, records and help texts read them from here, so a default
changes once."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

NUM_CTX = 4096
"""Context per request, in tokens: requests, VRAM estimates and eval-set defaults."""
NUM_PREDICT = 1024
"""Most tokens a reply may have: the motivating case's budget."""
EVALSET = "extraction-v1"
"""The bundled eval set a run, a training run and their data use unless told otherwise."""
OUT_DIR = Path("reports")
"""Where runs' reports, the store and selection.json go."""
MOSTLY_THINKING = 0.5
"""A thinking share (output before any JSON) at or above this is flagged, in the notes and the rankings."""

CACHE_DIR_ENV = "BENCHSEL_CACHE_DIR"
"""The one environment variable for benchsel's cache (derived GGUF metadata, downloaded bases)."""
DEPRECATED_CACHE_ENV = "BENCHSEL_CACHE"
"""The older name, still read when the new one is unset (with a DeprecationWarning)."""


def cache_dir() -> Path:
    """$BENCHSEL_CACHE_DIR, else the deprecated $BENCHSEL_CACHE, else $XDG_CACHE_HOME/benchsel, else
    ~/.cache/benchsel."""
    value = os.environ.get(CACHE_DIR_ENV)
    if not value and os.environ.get(DEPRECATED_CACHE_ENV):
        warnings.warn(
            f"{DEPRECATED_CACHE_ENV} is deprecated - set {CACHE_DIR_ENV} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        value = os.environ[DEPRECATED_CACHE_ENV]
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "benchsel"
