"""benchsel.digest: one sha256 of a file, the same as hashing its bytes at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchsel.digest import BLOCK_BYTES, sha256_file


def test_sha256_of_a_file_larger_than_a_block(tmp_path: Path) -> None:
    data = bytes(range(256)) * (BLOCK_BYTES // 256 + 3)
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(str(empty)) == hashlib.sha256(b"").hexdigest()
