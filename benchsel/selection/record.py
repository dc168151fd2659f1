"""selection.json: the typed, versioned SelectionRecord a Selection writes and `benchsel train` reads
back (older versions migrated on read), and the eval set it names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from benchsel import jsonio
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet
from benchsel.selection.options import Constraints, RankingName, Weights

SELECTION_VERSION = 2


class Recordable(Protocol):
    """What writes a selection.json: a ranking.Selection."""

    def record(self) -> SelectionRecord: ...


def write_selection(selection: Recordable, path: str | Path) -> Path:
    """Write ``selection.json`` (``path`` is the file, or a directory to put it in)."""
    target = Path(path)
    if target.suffix != ".json":
        target = target / "selection.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            json.dumps(selection.record().model_dump(mode="json"), indent=2) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror} - pass --out DIR") from None
    return target


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalSetRef(_Record):
    """The eval set a selection was scored on: `train` loads it from ``path`` (else by ``name``) and
    refuses it when its content no longer has ``hash``."""

    name: str = Field(min_length=1)
    hash: str = Field(min_length=1)
    path: str | None = None


class Winners(_Record):
    train: str | None = None
    deploy_now: str | None = None
    measured_trainability: str | None = None  # written only once the run has been probed

    @model_serializer(mode="wrap")
    def _without_an_unprobed_third(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("measured_trainability") is None:
            data.pop("measured_trainability", None)
        return data


class MeasuredEntryRecord(_Record):
    model: str
    rank: int | None
    score: float
    excluded: bool
    reason: str
    predicted_trainable_potential: float | None = None
    figures: dict[str, Any]


class MeasuredRankingRecord(_Record):
    """The third ranking: measured trainability from the run's latest probe (benchsel.probe)."""

    winner: str | None
    probe_id: str
    method: str
    created_at: str
    description: str
    main_metric: str
    probe_cases: int
    test_cases: int
    entries: list[MeasuredEntryRecord]


class TrainBase(_Record):
    """What `benchsel train` needs to resolve the base's weights."""

    name: str = Field(min_length=1)
    backend: str
    digest: str
    family: str | None = None
    parameter_size: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    size_bytes: int | None = None
    has_projector: bool = False


class VramRecord(_Record):
    bytes_needed: int
    label: str
    estimated_bytes: int | None = None
    measured_bytes: int | None = None
    headroom_bytes: int | None = None


class TrainingRecord(_Record):
    method: str
    needed_bytes: int
    fits: bool
    headroom_bytes: int


class EntryRecord(_Record):
    model: str
    label: str
    rank: int | None
    score: float
    excluded: bool
    exclusions: list[str]
    reason: str
    flags: list[str]
    metrics: dict[str, float]
    vram: VramRecord | None = None
    training: TrainingRecord | None = None
    decode_tokens_per_s: float | None = None
    thinking_share: float = 0.0
    found_gold: bool = True


class EstimateRecord(_Record):
    value: float
    low: float
    high: float


class CloseCallRecord(_Record):
    metric: str
    first: str
    second: str
    difference: EstimateRecord
    cases: int
    text: str


class RankingRecord(_Record):
    winner: str | None
    no_winner: str | None = None
    main_metric: str
    close_call: CloseCallRecord | None = None
    entries: list[EntryRecord]


class FailedRecord(_Record):
    model: str
    label: str
    failure: str


class SelectionRecord(_Record):
    """selection.json: what `benchsel select` decided, read back by `benchsel train`. Older layouts
    are migrated on read (:func:`migrate_selection`); a file that does not fit is refused whole."""

    version: Literal[2]
    created_at: str
    run_id: str = Field(min_length=1)
    evalset: EvalSetRef
    winners: Winners
    train_base: TrainBase | None
    constraints: Constraints
    weights: Weights
    rankings: dict[RankingName | Literal["measured_trainability"], RankingRecord | MeasuredRankingRecord]
    failed: list[FailedRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _winner_has_a_base(self) -> SelectionRecord:
        if self.winners.train is not None and self.train_base is None:
            raise ValueError("winners.train is set but train_base is missing")
        return self


def migrate_selection(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older selection.json layout up to :data:`SELECTION_VERSION`.

    Version 1 (no eval-set path; close calls judged by overlapping marginal intervals, with both
    estimates stored): the path is unknown, each entry's label is its model name, and the marginal
    estimates are dropped."""
    if data.get("version") == 1:
        data = {**data, "version": 2}
        rankings = data.get("rankings")
        if isinstance(rankings, dict):
            data["rankings"] = {key: _migrate_ranking_v1(value) for key, value in rankings.items()}
    return data


def _migrate_ranking_v1(ranking: Any) -> Any:
    if not isinstance(ranking, dict):
        return ranking
    out = dict(ranking)
    entries = out.get("entries")
    if isinstance(entries, list):
        out["entries"] = [
            {"label": e.get("model"), **e} if isinstance(e, dict) and "label" not in e else e for e in entries
        ]
    close = out.get("close_call")
    if isinstance(close, dict):
        out["close_call"] = {k: v for k, v in close.items() if k not in ("first_estimate", "second_estimate")}
    return out


REWRITE = "write it again with `benchsel select RUN_ID`"


def read_selection(path: str | Path, fix: str = REWRITE) -> SelectionRecord:
    """Read and validate a ``selection.json``, migrating an older layout. Any problem is one UsageError
    naming the file and the field, and ending in ``fix``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be read ({exc.strerror}) - run `benchsel select RUN_ID` first"
        ) from None
    text = jsonio.decode(raw.removeprefix(jsonio.BOM), str(path))
    data = jsonio.loads(text, str(path), whole_file=True, hint=fix)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a selection.json (a JSON object is expected) - {fix}")
    version = data.get("version")
    if version not in (1, SELECTION_VERSION):
        raise UsageError(
            f"{path}: version {version!r} is not a selection.json layout this benchsel reads "
            f"(1 or {SELECTION_VERSION}) - {fix}"
        )
    try:
        return SelectionRecord.model_validate(migrate_selection(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the file"
        message = str(err["msg"]).removeprefix("Value error, ")
        got = f" (got {_short_repr(err['input'])})" if err["loc"] else ""
        raise UsageError(f"{path}: {where}: {message}{got} - {fix}") from None


def load_selection(path: str | Path) -> SelectionRecord:
    """A ``selection.json`` to train from: read as :func:`read_selection` does, and refused when it
    names no training winner."""
    record = read_selection(path)
    if not record.winners.train:
        ranking = record.rankings.get("trainable_potential")
        why = ranking.no_winner if isinstance(ranking, RankingRecord) else None
        raise UsageError(
            f"{path}: {why or 'no model met the constraints'}, so there is nothing to train - pass --base"
        )
    return record


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def evalset_for_training(record: SelectionRecord) -> EvalSet:
    """The eval set the selection was made on: from its stored path (else its name), refused when its
    content changed since. Each error says to pass --evalset."""
    from benchsel.errors import EvalSetError
    from benchsel.evalset import load_evalset

    ref = record.evalset
    where = ref.path if ref.path and Path(ref.path).is_dir() else ref.name
    try:
        loaded = load_evalset(where)
    except EvalSetError as exc:
        stored = f" at {ref.path}" if ref.path else ""
        raise UsageError(
            f"the selection's eval set '{ref.name}'{stored} cannot be loaded ({exc}) - pass --evalset DIR "
            "with the eval set the run was made on"
        ) from None
    if loaded.content_hash != ref.hash:
        raise UsageError(
            f"the eval set at {loaded.path} changed since the selection was made (content hash "
            f"{loaded.content_hash[:12]}, the selection has {ref.hash[:12]}) - pass --evalset DIR to use "
            "it anyway, or restore the version the run was made on"
        )
    return loaded
