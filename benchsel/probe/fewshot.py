"""Worked examples for the few-shot probe: synthetic training cases (never eval-set cases), checked
for leakage against the whole eval set, so against both the probe and the test split."""

from __future__ import annotations

from benchsel.errors import UsageError
from benchsel.evalset import EvalSet

SHOT_SEED_OFFSET = 7919
"""Shots come from a stream of their own: the pilot LoRA's data with the same seed never repeats them."""


def worked_examples(evalset: EvalSet, k: int, seed: int = 0) -> list[tuple[str, str]]:
    """``k`` (text, gold answer as compact JSON) pairs from the deterministic synthetic generator."""
    from benchsel.synthetic import generate_cases
    from benchsel.train.data import case_example, find_leaks

    if k < 1:
        raise UsageError(f"--shots {k}: give at least 1 worked example")
    examples = [case_example(c, evalset.prompt, "synth") for c in generate_cases(k, seed + SHOT_SEED_OFFSET)]
    leaks = find_leaks(examples, evalset)
    if leaks:
        raise UsageError(
            f"{len(leaks)} worked examples repeat texts of eval set '{evalset.name}' "
            f"({', '.join(leaks.values())}) - choose another --seed"
        )
    return [(e.input_text, e.answer) for e in examples]
