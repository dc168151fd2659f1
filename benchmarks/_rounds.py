"""Side-by-side timing shared by the benchmarks: two sides measured in alternating rounds."""

from __future__ import annotations

from collections.abc import Callable


def alternate(rounds: int, a: Callable[[], float], b: Callable[[], float]) -> list[tuple[float, float]]:
    """(a, b) seconds per round, the order alternating so neither side always runs on a warmer machine."""
    results = []
    for i in range(rounds):
        if i % 2 == 0:
            first = a()
            results.append((first, b()))
        else:
            second = b()
            results.append((a(), second))
    return results
