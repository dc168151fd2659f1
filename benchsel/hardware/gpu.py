"""GPU detection: asks nvidia-smi and rocm-smi (runs them) for each GPU's name and memory."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from benchsel.errors import UsageError
from benchsel.hardware.units import MIB, parse_bytes

# ---------------------------------------------------------------- GPU detection


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    vendor: Literal["nvidia", "amd"]
    total_bytes: int
    used_bytes: int

    @property
    def free_bytes(self) -> int:
        return self.total_bytes - self.used_bytes


CommandRunner = Callable[[Sequence[str]], str]
NVIDIA_SMI = ("nvidia-smi", "--query-gpu=name,memory.total,memory.used", "--format=csv,noheader,nounits")
ROCM_SMI = ("rocm-smi", "--showmeminfo", "vram", "--json")


def run_command(argv: Sequence[str]) -> str:
    """Run a query tool and return its stdout; raises when it is missing or fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=15, check=True)
    return done.stdout


def detect_gpus(run: CommandRunner = run_command) -> list[Gpu]:
    """GPUs that nvidia-smi or rocm-smi report; an empty list when neither answers (then ask for --vram)."""
    gpus = parse_nvidia_smi(_try(run, NVIDIA_SMI))
    return gpus + parse_rocm_smi(_try(run, ROCM_SMI), first_index=len(gpus))


def _try(run: CommandRunner, argv: Sequence[str]) -> str:
    try:
        return run(argv)
    except (OSError, subprocess.SubprocessError):
        return ""  # not installed, no driver, or timed out: no GPU of that kind


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Lines 'NVIDIA GeForce RTX 4070, 12282, 1034' (MiB, nounits); unreadable lines are skipped."""
    gpus: list[Gpu] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        used = int(parts[2]) if parts[2].isdigit() else 0  # "[N/A]" on some boards
        gpus.append(Gpu(len(gpus), parts[0], "nvidia", int(parts[1]) * MIB, used * MIB))
    return gpus


def parse_rocm_smi(text: str, *, first_index: int = 0) -> list[Gpu]:
    """``{"card0": {"VRAM Total Memory (B)": "...", "VRAM Total Used Memory (B)": "..."}}``."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return []
    gpus: list[Gpu] = []
    for card, fields in data.items() if isinstance(data, dict) else ():
        if not isinstance(fields, dict):
            continue
        total = str(fields.get("VRAM Total Memory (B)", ""))
        used = str(fields.get("VRAM Total Used Memory (B)", "0"))
        if total.isdigit():
            gpus.append(
                Gpu(
                    first_index + len(gpus),
                    f"AMD {card}",
                    "amd",
                    int(total),
                    int(used) if used.isdigit() else 0,
                )
            )
    return gpus


def vram_budget(vram: str | None) -> tuple[int, Gpu | None]:
    """The VRAM to deploy on: ``vram`` (a size such as 8GiB) when given, else the largest detected GPU,
    returned too so the caller can say which was used. Neither is a usage error."""
    if vram is not None:
        try:
            return parse_bytes(vram), None
        except UsageError as exc:
            raise UsageError(f"--vram: {exc}") from None
    gpus = detect_gpus()
    if not gpus:
        raise UsageError("no GPU detected - pass --vram, e.g. --vram 8GiB")
    gpu = max(gpus, key=lambda g: g.total_bytes)
    return gpu.total_bytes, gpu
