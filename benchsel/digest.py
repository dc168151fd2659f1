"""The sha256 of a file, read in 1 MiB blocks: model files, adapters and bases are gigabytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]

BLOCK_BYTES = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()
