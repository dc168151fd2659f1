"""Folders benchsel writes into (the run store's, a report's): made when they may be, checked before use,
and every failure one UsageError that names the path, what is wrong and what to do."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from benchsel.errors import UsageError

__all__ = ["prepare_output_dir", "prepare_parent"]

log = logging.getLogger("benchsel")


def prepare_parent(path: Path, option: str) -> None:
    """Make sure the folder holding the file ``path`` exists. Only that one folder is ever created (and a
    notice says so): a mistyped path with several missing folders is an error, not a new tree."""
    folder = path.parent
    if folder.is_dir():
        return
    if folder.exists():
        raise UsageError(f"{option} {path}: {folder} is a file, not a folder - give a path inside a folder")
    if not folder.parent.is_dir():
        raise UsageError(
            f"{option} {path}: neither {folder} nor {folder.parent} exists - check the path for a typo, "
            f"or create the folders first (mkdir -p {folder})"
        )
    try:
        folder.mkdir()
    except OSError as exc:
        raise UsageError(
            f"{option} {path}: cannot create the folder {folder} ({exc.strerror}) - {_fix(option)}"
        ) from None
    log.warning("created the folder %s for %s", folder, path.name)


def prepare_output_dir(path: str | Path, option: str = "--out") -> Path:
    """The folder ``path``, created with its parents when missing, and checked writable."""
    folder = Path(path)
    for step in (folder, *folder.parents):
        if step.exists() and not step.is_dir():
            raise UsageError(f"{option} {folder}: {step} is a file, not a folder - {_fix(option)}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {folder}: cannot create it ({exc.strerror}) - {_fix(option)}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_fs(folder) else "no permission to write there"
        raise UsageError(f"{option} {folder}: cannot write to it ({why}) - {_fix(option)}")
    return folder


def _fix(option: str) -> str:
    return f"give {option} a folder you can write to"


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
