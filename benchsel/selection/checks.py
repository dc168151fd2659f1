"""Each model against the constraints: VRAM (measured beats estimated), speed, training memory, the
behaviour flags; and the candidates a backend can serve, described before any run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchsel import hardware
from benchsel.backends.base import Backend
from benchsel.defaults import MOSTLY_THINKING
from benchsel.errors import BenchselError, UsageError
from benchsel.hardware import format_bytes
from benchsel.records import ModelSnapshot
from benchsel.selection.options import Constraints
from benchsel.summary import ModelSummary


@dataclass(frozen=True)
class TrainingFit:
    method: str
    needed_bytes: int
    fits: bool
    headroom_bytes: int


@dataclass(frozen=True)
class Checks:
    """What the constraints say about one model, before any ranking."""

    vram: hardware.VramFigure | None
    headroom_bytes: int | None
    deploy_exclusions: tuple[str, ...]
    training: TrainingFit | None
    training_exclusions: tuple[str, ...]
    flags: tuple[str, ...]
    fit_text: str


def _measured(model: ModelSummary) -> hardware.MeasuredVram | None:
    memory = model.memory
    if memory is None or memory.size_bytes <= 0:
        return None
    vram = memory.size_vram_bytes if memory.size_vram_bytes is not None else memory.size_bytes
    return hardware.MeasuredVram(memory.size_bytes, vram, memory.source)


def _estimate(snapshot: ModelSnapshot, c: Constraints) -> tuple[hardware.VramEstimate | None, str | None]:
    if not snapshot.model_info or not snapshot.size_bytes:
        return None, "no model_info or file size to estimate VRAM from"
    try:
        estimate = hardware.estimate_inference_vram(
            snapshot.model_info,
            file_size_bytes=snapshot.size_bytes,
            num_ctx=c.num_ctx,
            parallel=c.parallel,
            kv_cache=c.kv_cache,
            has_projector=snapshot.has_projector,
            margin_bytes=c.margin_bytes,
        )
    except UsageError as exc:
        return None, f"VRAM estimate failed: {exc}"
    return estimate, None


def vram_of(
    model: ModelSummary, c: Constraints, run_num_ctx: int | None
) -> tuple[hardware.VramFigure | None, list[str]]:
    """The figure to decide with: measured beats estimated, unless it was measured at another context."""
    notes: list[str] = []
    estimate, problem = _estimate(model.snapshot, c)
    measured = _measured(model)
    if measured is not None and estimate is not None and run_num_ctx not in (None, c.num_ctx):
        notes.append(f"measured at num_ctx {run_num_ctx}, not {c.num_ctx}: the estimate is used")
        measured = None
    if measured is not None and measured.on_cpu_only:
        notes.append("on the CPU when measured (nothing in VRAM)")
    elif measured is not None and measured.spilled_to_cpu:
        notes.append(
            f"partly on CPU when measured ({hardware.format_bytes(measured.size_vram_bytes)} in VRAM)"
        )
    if measured is None and estimate is None:
        notes.append(problem or "no VRAM figure")
        return None, notes
    return hardware.vram_figure(estimate, measured), notes


def _training_fit(snapshot: ModelSnapshot, c: Constraints) -> tuple[TrainingFit | None, str | None]:
    if c.train_vram_bytes is None:
        return None, None
    try:
        estimate = hardware.training_memory_from_model_info(
            snapshot.model_info, parameter_count=snapshot.parameter_count, method=c.method
        )
    except UsageError as exc:
        return None, f"training memory unknown: {exc}"
    result = hardware.fits(estimate.total_bytes, c.train_vram_bytes)
    return TrainingFit(c.method, estimate.total_bytes, result.fits, result.headroom_bytes), None


def check(model: ModelSummary, c: Constraints, run_num_ctx: int | None = None) -> Checks:
    """Apply the constraints to one model."""
    figure, flags = vram_of(model, c, run_num_ctx)
    exclusions: list[str] = []
    headroom = None
    budget = _budget_text(c)
    if figure is None:
        fit_text = "VRAM unknown"
    elif c.vram_bytes is None:
        fit_text = f"needs {format_bytes(figure.bytes_needed)} ({figure.label}), VRAM not checked"
    else:
        fit = hardware.fits(figure, c.vram_bytes, c.reserve_bytes)
        headroom = fit.headroom_bytes
        if fit.fits:
            fit_text = (
                f"fits {budget} with {format_bytes(headroom)} to spare at num_ctx {c.num_ctx}, {figure.label}"
            )
        else:
            fit_text = f"needs {format_bytes(figure.bytes_needed)} ({figure.label}) at num_ctx {c.num_ctx}"
            exclusions.append(
                f"needs {format_bytes(figure.bytes_needed)} ({figure.label}) but {budget} leaves "
                f"{format_bytes(fit.available_bytes)}"
            )
    tps = model.speed.decode_tokens_per_s
    if c.min_tps is not None:
        if tps is None:
            flags.append("decode speed not measured: --min-tps not checked")
        elif tps < c.min_tps:
            exclusions.append(f"decodes {tps:.1f} tok/s, below --min-tps {c.min_tps:g}")
        if tps is not None and model.speed.contended:
            flags.append(
                "--min-tps judged on a decode speed measured under CPU contention (re-run when quiet)"
            )
    training, problem = _training_fit(model.snapshot, c)
    training_exclusions: list[str] = []
    if problem:
        flags.append(problem)
    if training is not None and not training.fits and c.train_vram_bytes is not None:
        training_exclusions.append(
            f"{training.method} training needs {format_bytes(training.needed_bytes)}, "
            f"more than --train-vram {format_bytes(c.train_vram_bytes)}"
        )
    flags.extend(_behaviour_flags(model))
    return Checks(
        figure, headroom, tuple(exclusions), training, tuple(training_exclusions), tuple(flags), fit_text
    )


def _budget_text(c: Constraints) -> str:
    if c.vram_bytes is None:
        return "no VRAM budget"
    if c.reserve_bytes:
        return f"{format_bytes(c.vram_bytes)} - {format_bytes(c.reserve_bytes)} reserve"
    return format_bytes(c.vram_bytes)


def _behaviour_flags(model: ModelSummary) -> list[str]:
    flags = []
    speed = model.speed
    if speed.thinking_share >= MOSTLY_THINKING:
        flags.append(f"thinking: {speed.thinking_share:.0%} of its output came before any JSON")
    if speed.truncated:
        flags.append(f"{speed.truncated}/{speed.replies} replies hit num_predict")
    if model.score.errors:
        flags.append(f"{model.score.errors} requests failed")
    return flags


@dataclass(frozen=True)
class Candidate:
    """A model a backend can serve, with its estimated VRAM at the planned context."""

    name: str
    snapshot: ModelSnapshot | None
    estimate: hardware.VramEstimate | None
    problem: str | None = None


def describe_candidates(
    backend: Backend, names: Sequence[str], constraints: Constraints | None = None
) -> list[Candidate]:
    """Describe each model and estimate its VRAM; a model that cannot be described is kept with why."""
    c = constraints or Constraints()
    out = []
    for name in names:
        try:
            snapshot = backend.describe(name)
        except BenchselError as exc:
            out.append(Candidate(name, None, None, str(exc)))
            continue
        estimate, problem = _estimate(snapshot, c)
        out.append(Candidate(name, snapshot, estimate, problem))
    return out
