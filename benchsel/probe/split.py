"""The eval set seen through a probe: a probe split disjoint from the test split, and the same cases
with k worked examples in the prompt."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from benchsel.errors import UsageError
from benchsel.evalset import Case, EvalSet, Prompt


@dataclass(frozen=True)
class Split:
    """Which cases a probe measures on and which it leaves for the final verdict."""

    probe: tuple[str, ...]
    test: tuple[str, ...]
    fraction: float
    seed: int

    def to_json(self) -> dict[str, object]:
        return {
            "probe": list(self.probe),
            "test": list(self.test),
            "fraction": self.fraction,
            "seed": self.seed,
        }


def parse_split(text: str) -> float:
    """``probe=0.5`` (or ``0.5``) -> 0.5, the share of the cases the probe measures on."""
    _, _, raw = text.rpartition("=")
    if text.count("=") > 1 or (text.count("=") == 1 and not text.startswith("probe=")):
        raise UsageError(f"--split {text!r}: write probe=FRACTION, e.g. --split probe=0.5")
    try:
        fraction = float(raw)
    except ValueError:
        raise UsageError(f"--split {text!r}: write probe=FRACTION, e.g. --split probe=0.5") from None
    if not 0 < fraction < 1:
        raise UsageError(f"--split {text!r}: the probe share must be between 0 and 1, e.g. probe=0.5")
    return fraction


def _order(case_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{case_id}".encode()).hexdigest()


def split_cases(cases: Sequence[Case], fraction: float, seed: int = 0) -> Split:
    """A seeded split, stratified by difficulty. Within a group the cases are ordered by a hash of
    their id and the seed, and the probe takes a prefix: other cases coming or going move at most the
    one case at the boundary of each group."""
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[case.difficulty].append(case)
    # each group gives floor(share) cases; the cases still owed to round(total) go to the groups with
    # the largest remainders, so small groups (one case each) still fill the probe split
    wanted = round(len(cases) * fraction)
    take = {name: int(len(members) * fraction) for name, members in groups.items()}
    owed = sorted(groups, key=lambda name: (-(len(groups[name]) * fraction - take[name]), name))
    for name in owed[: max(0, wanted - sum(take.values()))]:
        take[name] += 1
    probe: set[str] = set()
    for name, members in groups.items():
        ordered = sorted(members, key=lambda c: _order(c.id, seed))
        probe.update(c.id for c in ordered[: take[name]])
    if not probe or len(probe) == len(cases):
        raise UsageError(
            f"a probe share of {fraction:g} of {len(cases)} cases leaves one side empty - "
            "use more cases or a share nearer 0.5"
        )
    return Split(
        probe=tuple(c.id for c in cases if c.id in probe),
        test=tuple(c.id for c in cases if c.id not in probe),
        fraction=fraction,
        seed=seed,
    )


def subset(evalset: EvalSet, case_ids: Sequence[str]) -> EvalSet:
    """The eval set narrowed to ``case_ids``. Its content hash is the whole set's, so a case answered
    before with the same model and options is reused from the store rather than asked again."""
    wanted = set(case_ids)
    return replace(evalset, cases=tuple(c for c in evalset.cases if c.id in wanted))


@dataclass(frozen=True)
class FewShotPrompt(Prompt):
    """The eval set's prompt with worked examples as earlier user/assistant turns."""

    shots: tuple[tuple[str, str], ...] = field(default=())

    def messages(self, text: str) -> list[dict[str, str]]:
        base = super().messages(text)
        head, question = base[:-1], base[-1]
        turns = []
        for shot_text, answer in self.shots:
            turns.append({"role": "user", "content": self.user_template.replace("{text}", shot_text)})
            turns.append({"role": "assistant", "content": answer})
        return [*head, *turns, question]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{super().sha256}\0{json.dumps(self.shots)}".encode()).hexdigest()


def with_shots(evalset: EvalSet, shots: Sequence[tuple[str, str]]) -> EvalSet:
    """The same cases asked with ``shots`` in the prompt. A content hash of its own keeps its runs and
    answers apart from the zero-shot ones."""
    prompt = FewShotPrompt(evalset.prompt.system, evalset.prompt.user_template, tuple(shots))
    digest = hashlib.sha256(f"{evalset.content_hash}\0{prompt.sha256}".encode()).hexdigest()
    return replace(evalset, prompt=prompt, content_hash=digest)
