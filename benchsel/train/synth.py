"""Synthetic training examples: benchsel.synthetic's cases rendered with an eval set's prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchsel.synthetic import generate_cases

if TYPE_CHECKING:
    from benchsel.evalset import Prompt
    from benchsel.train.data import Example


def generate(n: int, seed: int, prompt: Prompt) -> list[Example]:
    """``n`` training examples: synthetic cases rendered with an eval set's prompt, gold as the answer."""
    from benchsel.train.data import case_example

    return [case_example(case, prompt, "synth") for case in generate_cases(n, seed)]
