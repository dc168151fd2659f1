"""The plots and the drill-down on awkward runs: hostile model names, transport errors, no timings."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from helpers import run_record

from benchsel.report import write_report
from benchsel.report.demo import DEMO_PROFILES, write_demo_evalset, write_demo_run
from benchsel.report.drilldown import case_details
from benchsel.report.html import f1_color, render_html
from benchsel.report.plots import case_f1_matrix, format_debt, heatmap, quality_speed
from benchsel.store import Store, StoredResult
from benchsel.summary import RunSummary, summarize_run

ODD_NAME = "evil$x^2$<script>alert(1)</script>&amp"


def odd_run(tmp_path: Path) -> RunSummary:
    evalset = write_demo_evalset(tmp_path / "evalset", 5, seed=2)
    with Store(tmp_path / "runs.sqlite") as store:
        write_demo_run(
            store, evalset, (replace(DEMO_PROFILES[0], name=ODD_NAME), DEMO_PROFILES[3]), run_id="odd"
        )
        store.add_result(
            StoredResult(
                "odd", ODD_NAME, evalset.cases[1].id, 0, "err", None, "timeout", "no answer in 300 s"
            )
        )
        return summarize_run(store, "odd")


def test_plots_draw_model_names_as_escaped_text(tmp_path: Path) -> None:
    summary = odd_run(tmp_path)
    for plot in (quality_speed(summary.models), format_debt(summary.models)):
        assert plot.svg.startswith("<svg")
        assert "<script" not in plot.svg
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp" in plot.svg
        assert "evil$x^2$" in plot.svg


def test_a_transport_error_is_grey_in_the_heatmap_and_named_in_the_drill_down(tmp_path: Path) -> None:
    summary = odd_run(tmp_path)
    ids = [case.id for case in summary.evalset.cases]
    matrix = case_f1_matrix(summary.models, ids)
    assert math.isnan(matrix[0][1]) and not math.isnan(matrix[0][0])
    assert "<svg" in heatmap(summary.models, ids).svg
    replies = case_details(summary)[1].replies
    errored = next(r for r in replies if r.model == ODD_NAME)
    assert errored.status == "transport error (timeout): no answer in 300 s"
    assert errored.entity_f1 is None and errored.entities is None
    assert f1_color(None) == "#8c959f"


def test_html_escapes_a_hostile_model_name_everywhere(tmp_path: Path) -> None:
    page = render_html(odd_run(tmp_path), None)
    assert page.count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_f1_colors_run_from_red_to_green() -> None:
    assert f1_color(0.0) == "#c80030"
    assert f1_color(1.0) == "#009630"
    assert f1_color(0.5) == "#c89630"


def test_a_run_without_answers_still_reports(tmp_path: Path) -> None:
    evalset = write_demo_evalset(tmp_path / "evalset", 3, seed=2)
    with Store(tmp_path / "runs.sqlite") as store:
        store.create_run(run_record(("never-answered",), evalset, run_id="empty"))
        summary = summarize_run(store, "empty")
    md, html = write_report(summary, None, tmp_path / "out")
    assert "| Model | Params |" in md.read_text(encoding="utf-8")
    assert "<svg" not in html.read_text(encoding="utf-8")
