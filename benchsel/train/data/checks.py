"""Checks before training: schema-invalid targets, exact and near duplicates (MinHash), examples that
leak into the eval set, and the train/validation split."""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from benchsel.errors import UsageError
from benchsel.normalize import normalize_text
from benchsel.train.data.examples import Example

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet


SHINGLE_WORDS = 5


NEAR_DUPLICATE_JACCARD = 0.8


LEAK_CONTAINMENT = 0.5


class LeakageError(UsageError):
    """Training examples repeat eval-set texts; ``ids`` lists the offending training ids."""

    def __init__(self, message: str, ids: Sequence[str]) -> None:
        super().__init__(message)
        self.ids = tuple(ids)


@dataclass(frozen=True)
class Dropped:
    id: str
    reason: Literal["invalid", "exact_duplicate", "near_duplicate", "leaked"]
    detail: str = ""


@dataclass(frozen=True)
class DataReport:
    total: int
    train: int
    validation: int
    dropped: tuple[Dropped, ...] = ()
    evalset: str | None = None
    seed: int = 0

    @property
    def kept(self) -> int:
        return self.train + self.validation

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(d.reason for d in self.dropped))

    def lines(self) -> list[str]:
        counts = self.counts
        parts = [
            f"{counts[reason]} {label}"
            for reason, label in (
                ("invalid", "schema-invalid targets"),
                ("exact_duplicate", "exact duplicates"),
                ("near_duplicate", "near duplicates"),
            )
            if counts.get(reason)
        ]
        if counts.get("leaked"):
            parts.append(f"{counts['leaked']} leaked into {self.evalset} (dropped)")
        head = f"kept {self.kept} of {self.total}" + (": " + ", ".join(parts) if parts else "")
        lines = [head, f"split: {self.train} train, {self.validation} validation (seed {self.seed})"]
        lines += [f"  invalid {d.id}: {d.detail}" for d in self.dropped if d.reason == "invalid"][:5]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True)
class PreparedData:
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    report: DataReport


def prepare(
    examples: Sequence[Example],
    *,
    schema: Mapping[str, Any] | None,
    evalset: EvalSet | None = None,
    drop_leaks: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> PreparedData:
    """Check, deduplicate, leak-check and split training examples (in that order)."""
    if not 0 <= val_fraction < 1:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    dropped: list[Dropped] = []
    kept = _drop_invalid(list(examples), schema, dropped)
    kept = _drop_exact_duplicates(kept, dropped)
    kept = _drop_near_duplicates(kept, dropped)
    if evalset is not None:
        kept = _check_leaks(kept, evalset, drop_leaks, dropped)
    train, validation = split(kept, val_fraction, seed)
    name = evalset.name if evalset is not None else None
    report = DataReport(len(examples), len(train), len(validation), tuple(dropped), name, seed)
    return PreparedData(tuple(train), tuple(validation), report)


def split(examples: Sequence[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded split; at least one validation example when there are two or more and val_fraction > 0."""
    n = len(examples)
    n_val = min(n - 1, max(1, round(n * val_fraction))) if n >= 2 and val_fraction > 0 else 0
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [e for i, e in enumerate(examples) if i not in val_idx]
    return train, [e for i, e in enumerate(examples) if i in val_idx]


def _drop_invalid(
    examples: list[Example], schema: Mapping[str, Any] | None, dropped: list[Dropped]
) -> list[Example]:
    if schema is None:
        return examples
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    kept = []
    for example in examples:
        try:
            target = json.loads(example.answer)
        except json.JSONDecodeError as exc:
            dropped.append(Dropped(example.id, "invalid", f"answer is not JSON ({exc.msg})"))
            continue
        error = next(iter(validator.iter_errors(target)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "top level"
            dropped.append(Dropped(example.id, "invalid", f"{where}: {error.message}"))
            continue
        kept.append(example)
    return kept


def shingles(text: str, k: int = SHINGLE_WORDS) -> frozenset[int]:
    """Hashes of word k-grams of the normalised text (the whole text when it is shorter than k words)."""
    words = normalize_text(text).split()
    grams = [" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))]
    return frozenset(zlib.crc32(g.encode()) for g in grams)


def _drop_exact_duplicates(examples: list[Example], dropped: list[Dropped]) -> list[Example]:
    first: dict[str, str] = {}
    kept = []
    for example in examples:
        key = normalize_text(example.input_text)
        if key in first:
            dropped.append(Dropped(example.id, "exact_duplicate", f"same text as {first[key]}"))
            continue
        first[key] = example.id
        kept.append(example)
    return kept


def _drop_near_duplicates(examples: list[Example], dropped: list[Dropped]) -> list[Example]:
    sets = [shingles(e.input_text) for e in examples]
    duplicate_of = near_duplicates(sets, NEAR_DUPLICATE_JACCARD)
    kept = []
    for i, example in enumerate(examples):
        if i in duplicate_of:
            other = examples[duplicate_of[i]].id
            dropped.append(Dropped(example.id, "near_duplicate", f"near duplicate of {other}"))
        else:
            kept.append(example)
    return kept


_MINHASH_BANDS = 20


_MINHASH_ROWS = 5


def near_duplicates(sets: Sequence[frozenset[int]], threshold: float) -> dict[int, int]:
    """Map each set's index to an earlier kept set it is a near duplicate of (Jaccard >= threshold).

    MinHash signatures banded into an LSH index give the candidates; exact Jaccard confirms them, so
    the result holds no false positives and rarely misses a pair above the threshold.
    """
    if not sets:
        return {}
    signatures = _minhash([sorted(s) for s in sets])
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(_MINHASH_BANDS)]
    found: dict[int, int] = {}
    for i, sig in enumerate(signatures):
        keys = [sig[b * _MINHASH_ROWS : (b + 1) * _MINHASH_ROWS].tobytes() for b in range(_MINHASH_BANDS)]
        candidates = sorted({j for band, key in zip(buckets, keys, strict=True) for j in band.get(key, ())})
        match = next((j for j in candidates if _jaccard(sets[i], sets[j]) >= threshold), None)
        if match is not None:
            found[i] = match
            continue
        for band, key in zip(buckets, keys, strict=True):
            band.setdefault(key, []).append(i)
    return found


def _minhash(hashes: list[list[int]]) -> Any:
    import numpy as np

    lengths = np.array([len(h) for h in hashes])
    flat = np.fromiter((x for h in hashes for x in h), dtype=np.uint64, count=int(lengths.sum()))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    perms = _MINHASH_BANDS * _MINHASH_ROWS
    salts = np.random.default_rng(20240611).integers(0, 1 << 63, size=perms, dtype=np.uint64)
    out = np.empty((len(hashes), perms), dtype=np.uint64)
    for k in range(perms):
        out[:, k] = np.minimum.reduceat(_mix64(flat ^ salts[k]), starts)
    return out


def _mix64(x: Any) -> Any:
    """splitmix64's finaliser: a bijective 64-bit mix, so each salt gives an independent permutation."""
    import numpy as np

    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _jaccard(left: frozenset[int], right: frozenset[int]) -> float:
    return len(left & right) / len(left | right) if left or right else 1.0


def find_leaks(examples: Sequence[Example], evalset: EvalSet) -> dict[str, str]:
    """Training ids whose text contains at least half of an eval case's shingles -> that case's id."""
    index: dict[int, list[int]] = {}
    case_sizes = []
    for c, case in enumerate(evalset.cases):
        grams = shingles(case.text)
        case_sizes.append(len(grams))
        for g in grams:
            index.setdefault(g, []).append(c)
    leaks: dict[str, str] = {}
    for example in examples:
        hits = Counter(c for g in shingles(example.input_text) for c in index.get(g, ()))
        leaked = [c for c, n in hits.items() if n / case_sizes[c] >= LEAK_CONTAINMENT]
        if leaked:
            leaks[example.id] = evalset.cases[min(leaked)].id
    return leaks


def _check_leaks(
    examples: list[Example], evalset: EvalSet, drop_leaks: bool, dropped: list[Dropped]
) -> list[Example]:
    leaks = find_leaks(examples, evalset)
    if leaks and not drop_leaks:
        shown = ", ".join(f"{i} (eval case {c})" for i, c in list(leaks.items())[:5])
        more = f" and {len(leaks) - 5} more" if len(leaks) > 5 else ""
        raise LeakageError(
            f"{len(leaks)} training examples repeat texts of eval set '{evalset.name}': {shown}{more} - "
            "training on them would inflate the after-training scores; remove them, or --drop-leaks "
            "drops them",
            list(leaks),
        )
    dropped.extend(Dropped(i, "leaked", f"repeats eval case {c}") for i, c in leaks.items())
    return [e for e in examples if e.id not in leaks]
