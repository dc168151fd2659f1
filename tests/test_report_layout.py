"""The report after `run --limit`: only the cases that were run (plot columns, drill-down, header);
plot labels that do not overlap; the VRAM caption names the margin in the estimate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchsel.report import write_report
from benchsel.report.demo import DEMO_PROFILES, write_demo_evalset, write_demo_run
from benchsel.report.drilldown import case_details
from benchsel.report.html import render_plots
from benchsel.report.plots import LABEL_PT, label_offsets, vram
from benchsel.report.selection_view import VramBar, selection_view
from benchsel.selection import Constraints, select
from benchsel.store import Store
from benchsel.summary import RunSummary, summarize_run

GIB = 1024**3


def limited_run(tmp_path: Path, run: int = 3, total: int = 8) -> RunSummary:
    """A run that sent only the first ``run`` cases of a ``total``-case set (as --limit does)."""
    evalset = write_demo_evalset(tmp_path / "evalset", total, seed=4)
    with Store(tmp_path / "runs.sqlite") as store:
        write_demo_run(store, replace(evalset, cases=evalset.cases[:run]), DEMO_PROFILES[:2], run_id="lim")
        return summarize_run(store, "lim")


def test_a_limited_run_shows_only_the_cases_it_ran(tmp_path: Path) -> None:
    summary = limited_run(tmp_path)
    sent = [case.id for case in summary.evalset.cases[:3]]
    unsent = [case.id for case in summary.evalset.cases[3:]]
    assert [detail.case_id for detail in case_details(summary)] == sent
    heatmap = next(p for p in render_plots(summary, None) if p.key == "heatmap")
    assert all(f">{case_id}<" in heatmap.svg for case_id in sent)
    assert not any(f">{case_id}<" in heatmap.svg for case_id in unsent)
    (md,) = write_report(summary, select(summary), tmp_path / "out", "md")
    assert "(3 of 8 cases run, hash" in md.read_text(encoding="utf-8")


def test_a_full_run_says_how_many_cases(tmp_path: Path) -> None:
    summary = limited_run(tmp_path, run=4, total=4)
    (md,) = write_report(summary, None, tmp_path / "out", "md")
    assert "(4 cases, hash" in md.read_text(encoding="utf-8")


def _boxes(names: list[str], points: list[tuple[float, float]], width: float) -> list[tuple[float, ...]]:
    offsets = label_offsets(names, points, width)
    return [
        (px + dx, py + dy, px + dx + len(n) * LABEL_PT * 0.62, py + dy + LABEL_PT * 1.25)
        for n, (px, py), (dx, dy) in zip(names, points, offsets, strict=True)
    ]


def test_labels_of_coincident_points_do_not_overlap() -> None:
    names = ["gemma3:270m", "smollm2:135m", "qwen3:0.6b", "gemma3:1b"]
    for points in ([(0.0, 0.0)] * 4, [(10.0, 50.0), (12.0, 52.0), (11.0, 49.0), (300.0, 50.0)]):
        boxes = _boxes(names, points, width=400.0)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_a_label_at_the_right_edge_goes_left_of_its_point() -> None:
    ((dx, _),) = label_offsets(["smollm2:135m"], [(395.0, 10.0)], 400.0)
    assert dx < 0


def test_vram_caption_says_the_estimate_includes_the_margin(tmp_path: Path) -> None:
    plot = vram([VramBar("m", 2 * GIB, GIB)], 8 * GIB, 3 * GIB)
    assert "The estimate includes the 1.0 GiB margin llama.cpp keeps free" in plot.caption
    summary = limited_run(tmp_path)
    view = selection_view(summary, select(summary, Constraints(vram_bytes=8 * GIB, margin_bytes=GIB // 2)))
    plot = next(p for p in render_plots(summary, view) if p.key == "vram")
    assert "includes the 512.0 MiB margin" in plot.caption
