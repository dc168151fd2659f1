"""The allowed range of each numeric run option: one table that the CLI (as click types) and the
library (``benchsel.run``) both check, so a bad number is one clear line wherever it comes from."""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchsel.defaults import NUM_CTX
from benchsel.errors import UsageError


@dataclass(frozen=True)
class Bound:
    """``option`` is what the CLI calls it; ``low`` is the smallest allowed value (excluded when
    ``low_open``); floats must also be finite."""

    option: str
    integer: bool
    low: float
    low_open: bool = False
    example: str = ""
    unit: str = ""

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        relation = "above" if self.low_open else "at least"
        low = int(self.low) if self.integer else f"{self.low:g}"
        return f"{kind} {relation} {low}{self.unit}"

    def check(self, value: float | int | None) -> None:
        """Raise UsageError when ``value`` (None means "not given") is out of range."""
        if value is None:
            return
        ok = not isinstance(value, bool) and isinstance(value, int | float)
        if ok and self.integer:
            ok = isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())
        if ok:
            ok = math.isfinite(value) and (value > self.low if self.low_open else value >= self.low)
        if not ok:
            hint = f", e.g. {self.option} {self.example}" if self.example else ""
            raise UsageError(f"{self.option} {value!r}: must be {self.describe()}{hint}")


# keyed by the library's parameter names (benchsel.run)
RUN_BOUNDS: dict[str, Bound] = {
    "timeout_s": Bound("--timeout", integer=False, low=0, low_open=True, example="300", unit=" seconds"),
    "temperature": Bound("--temperature", integer=False, low=0, example="0"),
    "limit": Bound("--limit", integer=True, low=1, example="5"),
    "num_predict": Bound("--num-predict", integer=True, low=1, example="1024"),
    "num_ctx": Bound("--num-ctx", integer=True, low=1, example=str(NUM_CTX)),
    "threads": Bound("--threads", integer=True, low=1, example="4"),
    "concurrency": Bound("-j", integer=True, low=1, example="2"),
    "repeats": Bound("--repeats", integer=True, low=1, example="3"),
    "retries": Bound("--retries", integer=True, low=0, example="3"),
}


def check_run_options(**values: float | int | None) -> None:
    """Check each given option against :data:`RUN_BOUNDS` (unknown names are a programming error)."""
    for name, value in values.items():
        RUN_BOUNDS[name].check(value)
