"""The report's plots as small inline SVG strings (matplotlib, imported when a plot is drawn)."""

from __future__ import annotations

import functools
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec

from benchsel.report.selection_view import MeasuredPoint, VramBar
from benchsel.summary import ModelSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GIB = 1024**3
P = ParamSpec("P")
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "benchsel",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    caption: str
    svg: str


def _label(text: str) -> str:
    """Model text as a literal label: matplotlib would read '$...$' as math."""
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _figure(width: float, height: float, left_in: float = 0.6) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    # fixed margins: a layout engine would draw every figure twice more
    fig.subplots_adjust(left=left_in / width, right=0.97, bottom=0.5 / height, top=1 - 0.15 / height)
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as an <svg> element (no XML prologue, no metadata, text kept as text)."""
    buffer = io.StringIO()
    with _style():
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None})
    svg = _PROLOGUE.sub("", buffer.getvalue(), count=1)
    if "<script" in svg.lower():
        raise ValueError("a plot's SVG holds a script element")
    return svg


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        yield


def _draw(width: float, height: float, left_in: float = 0.6) -> tuple[Figure, Axes]:
    fig = _figure(width, height, left_in)
    return fig, fig.add_subplot()


def _styled(draw: Callable[P, Plot]) -> Callable[P, Plot]:
    """Draw and save under the report's rc settings (fonts as text, light grid, no top/right spines)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Plot:
        with _style():
            return draw(*args, **kwargs)

    return wrapper


def _label_width_in(labels: Sequence[str], font_pt: float = 9) -> float:
    return 0.3 + max((len(label) for label in labels), default=4) * 0.6 * font_pt / 72


def _colors(n: int) -> list[str]:
    return [COLORS[i % len(COLORS)] for i in range(n)]


def _points(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    colors: Sequence[str],
    y_bounds: Sequence[tuple[float, float]] = (),
    x_bounds: Sequence[tuple[float, float]] = (),
    interval_alpha: float = 1.0,
) -> None:
    """Points with interval bars, one artist per kind (cheap to draw and small as SVG)."""
    if y_bounds:
        lows, highs = [b[0] for b in y_bounds], [b[1] for b in y_bounds]
        ax.vlines(xs, lows, highs, colors=colors, lw=1.2, alpha=interval_alpha)
    if x_bounds:
        lows, highs = [b[0] for b in x_bounds], [b[1] for b in x_bounds]
        ax.hlines(ys, lows, highs, colors=colors, lw=1.2, alpha=interval_alpha)
    ax.scatter(xs, ys, c=colors, s=28, zorder=3)


LABEL_PT = 8
GAP_OFFSET = 0.012  # valid-JSON units between a point and its format-debt line
Box = tuple[float, float, float, float]  # left, bottom, right, top in points from the axes' origin


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_offsets(
    names: Sequence[str], points_pt: Sequence[tuple[float, float]], width_pt: float
) -> list[tuple[float, float]]:
    """Where each point's name goes (offset in points), so that no two names overlap: right of the
    point (left of it near the right edge), then stepped up and down until the box is free."""
    placed: list[Box] = []
    offsets = []
    height = LABEL_PT * 1.25
    for name, (px, py) in zip(names, points_pt, strict=True):
        width = len(name) * LABEL_PT * 0.62
        dx = 5.0 if px + 5 + width <= width_pt else -5.0 - width
        for step in range(4 * len(names) + 1):
            dy = 3.0 + (height if step % 2 else -height) * ((step + 1) // 2)
            box = (px + dx, py + dy, px + dx + width, py + dy + height)
            if not any(_overlaps(box, other) for other in placed):
                break
        placed.append(box)
        offsets.append((dx, dy))
    return offsets


def _names(ax: Axes, names: Sequence[str], xs: Sequence[float], ys: Sequence[float]) -> None:
    """Each point's name beside it; names that would collide are stepped apart (label_offsets)."""
    dpi = ax.figure.dpi
    width_pt = ax.bbox.width / dpi * 72  # the axes' size in points, as the offsets are given
    height_pt = ax.bbox.height / dpi * 72
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    points = [
        ((x - x0) / (x1 - x0) * width_pt, (y - y0) / (y1 - y0) * height_pt)
        for x, y in zip(xs, ys, strict=True)
    ]
    for name, (dx, dy), x, y in zip(names, label_offsets(names, points, width_pt), xs, ys, strict=True):
        ax.annotate(_label(name), (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=LABEL_PT)


@_styled
def quality_speed(models: Sequence[ModelSummary]) -> Plot:
    fig, ax = _draw(6.4, 3.8)
    timed = [(m, c) for m, c in zip(models, _colors(len(models)), strict=True) if m.speed.decode_tokens_per_s]
    xs = [m.speed.decode_tokens_per_s or 0.0 for m, _ in timed]
    f1s = [m.score.as_is.entities.f1 for m, _ in timed]
    ys = [f.value for f in f1s]
    _points(ax, xs, ys, [c for _, c in timed], y_bounds=[(f.low, f.high) for f in f1s])
    ax.set_xlabel("decode tok/s")
    ax.set_ylabel("entity F1 (as-is)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(0, max(xs, default=1.0) * 1.25 + 1)
    _names(ax, [m.display_name for m, _ in timed], xs, ys)
    return Plot(
        "quality-speed",
        "Quality against speed",
        "As-is entity F1 with its 95% interval against decode speed; up and to the right is better.",
        to_svg(fig),
    )


@_styled
def format_debt(models: Sequence[ModelSummary]) -> Plot:
    fig, ax = _draw(6.4, 3.8)
    colors = _colors(len(models))
    valid = [m.score.valid_json for m in models]
    content = [m.score.content.entities.f1 for m in models]
    xs = [v.value for v in valid]
    as_is = [m.score.as_is.entities.f1.value for m in models]
    # the gap is drawn just left of the point, so the content F1 interval (on the point) cannot hide it
    gap_xs = [x - GAP_OFFSET for x in xs]
    ax.vlines(
        gap_xs, as_is, [c.value for c in content], colors=colors, linestyles="dashed", lw=1.5, zorder=2.5
    )
    ax.scatter(xs, as_is, facecolors="white", edgecolors=colors, s=24, zorder=3)
    _points(
        ax,
        xs,
        [c.value for c in content],
        colors,
        y_bounds=[(c.low, c.high) for c in content],
        x_bounds=[(v.low, v.high) for v in valid],
        interval_alpha=0.4,
    )
    ax.set_xlabel("valid JSON rate")
    ax.set_ylabel("entity F1")
    ax.set_xlim(-0.05, 1.05)  # a rate: 0 to 1; names near the right edge go left of their point
    ax.set_ylim(-0.05, 1.05)
    _names(ax, [m.display_name for m in models], xs, [c.value for c in content])
    return Plot(
        "format-debt",
        "Valid JSON against content entity F1",
        "Filled: content entity F1 (what the model understood), with faint 95% intervals on both axes. "
        "Hollow: as-is F1. The dashed line beside each point spans the format debt a LoRA fixes cheaply.",
        to_svg(fig),
    )


@_styled
def predicted_vs_measured(points: Sequence[MeasuredPoint]) -> Plot:
    fig, ax = _draw(6.4, 3.8)
    xs = [p.predicted for p in points]
    ys = [p.measured for p in points]
    _points(ax, xs, ys, _colors(len(points)), y_bounds=[(p.low, p.high) for p in points])
    _names(ax, [p.model for p in points], xs, ys)
    ax.set_xlabel("trainable potential (predicted)")
    ax.set_ylabel("as-is entity F1 after the probe")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    return Plot(
        "predicted-measured",
        "Predicted against measured trainability",
        "Each probed model's trainable-potential score against the as-is entity F1 it reached after the "
        "probe, with its 95% interval. Where the order along the two axes differs, the measurement is "
        "the better guide.",
        to_svg(fig),
    )


@_styled
def vram(
    bars: Sequence[VramBar],
    budget_bytes: int | None,
    reserve_bytes: int | None,
    margin_bytes: int | None = None,
) -> Plot:
    names = [_label(b.model) for b in bars]
    fig, ax = _draw(6.4, 0.9 + 0.32 * max(len(bars), 1), _label_width_in(names))
    ys = list(range(len(bars)))
    estimated = [(b.estimated_bytes or 0) / GIB for b in bars]
    measured = [(b.measured_bytes or 0) / GIB for b in bars]
    ax.barh([y - 0.2 for y in ys], estimated, height=0.38, color="#9ecae1", label="estimated")
    ax.barh([y + 0.2 for y in ys], measured, height=0.38, color="#08519c", label="measured")
    if budget_bytes:
        ax.axvline(budget_bytes / GIB, color="#d62728", lw=1.5, label="budget")
        if reserve_bytes:
            start = (budget_bytes - reserve_bytes) / GIB
            ax.axvspan(start, budget_bytes / GIB, color="#d62728", alpha=0.12, label="reserve")
    ax.set_yticks(ys, names)
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.set_xlabel("GiB")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="best", fontsize=7)
    from benchsel.hardware import DEFAULT_GPU_MARGIN_BYTES, format_bytes

    margin = format_bytes(DEFAULT_GPU_MARGIN_BYTES if margin_bytes is None else margin_bytes)
    caption = (
        f"Estimated and measured VRAM per model. The estimate includes the {margin} margin llama.cpp keeps "
        "free on the GPU (--margin); a measured figure does not, and memory measured on the CPU (RAM) is "
        "not drawn"
    )
    if budget_bytes:
        caption += ". The red line is the VRAM budget; the shaded band is the reserve."
    else:
        caption += "; no budget was given (pass --vram)."
    return Plot("vram", "VRAM", caption, to_svg(fig))


def case_f1_matrix(models: Sequence[ModelSummary], case_ids: Sequence[str]) -> list[list[float]]:
    """Content entity F1 per model and case (mean over repeats; NaN where no reply was scored)."""
    rows = []
    for m in models:
        per_case: dict[str, list[float]] = defaultdict(list)
        for reply in m.score.per_reply:
            per_case[reply.case_id].append(reply.content_entity_f1)
        rows.append([sum(v) / len(v) if (v := per_case.get(c)) else float("nan") for c in case_ids])
    return rows


@_styled
def heatmap(models: Sequence[ModelSummary], case_ids: Sequence[str]) -> Plot:
    import numpy as np

    matrix = np.array(case_f1_matrix(models, case_ids), dtype=float).reshape(len(models), len(case_ids))
    names = [_label(m.display_name) for m in models]
    height = 1.3 + 0.28 * max(len(models), 1)
    fig, ax = _draw(11.0, height, _label_width_in(names))
    fig.subplots_adjust(bottom=1.0 / height, right=0.93)
    image = ax.imshow(
        np.ma.masked_invalid(matrix), aspect="auto", cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_yticks(range(len(models)), names)
    step = max(1, len(case_ids) // 20)
    ax.set_xticks(
        range(0, len(case_ids), step), [_label(c) for c in case_ids[::step]], rotation=90, fontsize=6
    )
    ax.grid(False)
    ax.set_facecolor("#d0d7de")  # masked cells (no scored reply) show the axes' grey
    fig.colorbar(image, cax=fig.add_axes((0.945, 1.0 / height, 0.012, 1 - 1.15 / height)))
    return Plot(
        "heatmap",
        "Per-case content entity F1",
        "One row per model, one column per case that was run; grey where that model has no scored "
        "reply. The drill-down below has every case that was run.",
        to_svg(fig),
    )
