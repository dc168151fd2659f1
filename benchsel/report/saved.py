"""The selection a report shows: the run's own selection.json (what `benchsel select` wrote last), so
`select` then `report` agree, with any constraint or weight given to `report` on top."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel.errors import UsageError

if TYPE_CHECKING:
    from benchsel.selection import Constraints, Selection, Weights
    from benchsel.summary import RunSummary

SELECTION_FILE = "selection.json"


@dataclass(frozen=True)
class SavedSelection:
    """The constraints and weights of a selection.json, and the eval set it ranked against."""

    path: Path
    constraints: Constraints
    weights: Weights
    evalset_hash: str


def saved_selection(out_dir: str | Path, run_id: str) -> SavedSelection | None:
    """``<out_dir>/<run_id>/selection.json`` read back (the typed, versioned record); None when there
    is none."""
    from benchsel.selection import read_selection

    path = Path(out_dir) / run_id / SELECTION_FILE
    if not path.is_file():
        return None
    record = read_selection(path, fix=f"write it again with `benchsel select {run_id}` or delete it")
    return SavedSelection(path, record.constraints, record.weights, record.evalset.hash)


def report_selection(
    summary: RunSummary,
    out_dir: str | Path,
    constraints: Mapping[str, Any] | None = None,
    weights_file: str | Path | None = None,
    weight_pairs: Sequence[str] = (),
) -> tuple[Selection, list[str]]:
    """Rank ``summary`` as its saved selection.json did (when it ranked the same eval set), with the
    ``constraints`` fields, the weights file and the NAME=VALUE weights given here winning. Returns the
    selection and lines saying where its inputs came from."""
    from benchsel.selection import DEFAULT_WEIGHTS, Constraints, load_weights, parse_weight_overrides, select

    notes: list[str] = []
    base: dict[str, Any] = {}
    weights = DEFAULT_WEIGHTS
    saved = saved_selection(out_dir, summary.run.id)
    if saved is not None and saved.evalset_hash != summary.evalset.content_hash:
        notes.append(f"not using {saved.path}: it ranked another version of the eval set")
    elif saved is not None:
        base, weights = saved.constraints.model_dump(), saved.weights
        notes.append(f"constraints and weights from {saved.path}")
    if weights_file is not None:
        weights = load_weights(weights_file, weights)
    weights = parse_weight_overrides(weight_pairs, weights)
    ranked = Constraints.of(**{**base, **(constraints or {})})
    return select(summary, ranked, weights), notes


def selection_after_run(summary: RunSummary, out_dir: str | Path) -> tuple[Selection | None, str | None]:
    """The selection a finished run's report shows: as its saved selection.json ranks (a resumed run),
    else without a VRAM budget (`benchsel select` / `report` add one). A broken selection.json is a note
    to show, not an error: the run itself has finished."""
    from benchsel.selection import select

    if not summary.models:
        return None, None
    try:
        return report_selection(summary, out_dir)[0], None
    except UsageError as exc:
        return select(summary), str(exc)
