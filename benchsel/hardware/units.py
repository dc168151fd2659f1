"""Byte units: KiB/MiB/GiB, reading a size a person typed (8GiB, 7.5G, 8GB) and writing one."""

from __future__ import annotations

import re
from fractions import Fraction

from benchsel.errors import UsageError

KIB = 1024
MIB = 1024**2
GIB = 1024**3

# ---------------------------------------------------------------- byte strings

_UNITS = {
    "": 1,
    "b": 1,
    "k": KIB,
    "kib": KIB,
    "kb": 1000,
    "m": MIB,
    "mib": MIB,
    "mb": 1000**2,
    "g": GIB,
    "gib": GIB,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'8GiB', '512MiB', '7.5G' (binary: G = GiB) or '8GB' (decimal: 8 x 10^9) -> bytes. A number
    without a unit is an error (is '8' bytes or GiB?), except 0."""
    match = _BYTES_RE.match(text) if isinstance(text, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"cannot read {text!r} as a size - write a number and a unit, e.g. 8GiB, {SIZE_UNITS}"
        )
    number = Fraction(match.group(1))
    if not unit and number != 0:  # "8" meant 8 GiB, never 8 bytes: make the unit explicit
        raise UsageError(f"size {text.strip()!r} has no unit - write e.g. {text.strip()}GiB; {SIZE_UNITS}")
    return int(number * _UNITS[unit])


SIZE_UNITS = "units: B, KiB/K, MiB/M, GiB/G, TiB/T (binary), KB, MB, GB, TB (decimal)"


def format_bytes(n: int) -> str:
    """Binary units, one decimal: 5_261_334_528 -> '4.9 GiB'; under 1 KiB in plain bytes."""
    size = abs(n)
    sign = "-" if n < 0 else ""
    if size < KIB:
        return f"{sign}{size} B"
    for unit, scale in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale * 0.9995 or unit == "KiB":
            return f"{sign}{size / scale:.1f} {unit}"
    raise AssertionError("unreachable")
