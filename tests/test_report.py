"""report.md and report.html from runs written into a real store: content, agreement between the two,
self-containment and escaping of model text."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchsel.cli.main import cli
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet
from benchsel.records import Reply
from benchsel.report import parse_formats, write_report
from benchsel.report.demo import DEMO_PROFILES, write_demo_evalset, write_demo_run
from benchsel.selection import Constraints, select
from benchsel.store import Store, StoredResult
from benchsel.summary import ModelSummary, RunSummary, summarize_model, summarize_run

GIB = 1024**3
PAYLOAD = (
    '</script><script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1"> {{ 7*7 }} '
    "| pipe | `tick` <b>bold</b>"
)


def add_hostile_reply(store: Store, run_id: str, evalset: EvalSet, model: str) -> None:
    """Replace one model's reply to the first case with markup and template syntax around a JSON answer."""
    case = evalset.cases[0]
    content = f'{PAYLOAD}\n{{"entities": [{{"name": "{case.gold.entities[0].name}"}}], "relationships": []}}'
    store.add_result(
        StoredResult(
            run_id,
            model,
            case.id,
            0,
            f"hostile-{model}",
            Reply(content=content, eval_count=20, eval_duration_ns=500_000_000, thinking=PAYLOAD),
        )
    )


def make_run(
    tmp_path: Path, cases: int = 12, profiles: int = 4, run_id: str = "run-a"
) -> tuple[Store, RunSummary]:
    evalset = write_demo_evalset(tmp_path / "evalset", cases, seed=3)
    store = Store(tmp_path / "runs.sqlite")
    write_demo_run(store, evalset, DEMO_PROFILES[:profiles], run_id=run_id, seed=5)
    add_hostile_reply(store, run_id, evalset, DEMO_PROFILES[0].name)
    return store, summarize_run(store, run_id)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    store, summary = make_run(tmp)
    store.close()
    selection = select(summary, Constraints.of(vram_bytes=8 * GIB, reserve_bytes=3 * GIB))
    md, html = write_report(summary, selection, tmp / "out", "md,html")
    return summary, md, html


class TableReader(HTMLParser):
    """The text of every cell of one table (by id) in an HTML page."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.urls: list[tuple[str, str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "poster", "data") and value is not None:
                self.urls.append((tag, name, value))
        self.scripts += tag == "script"
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.depth = 0

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def read_html(path: Path, table_id: str = "results-table") -> TableReader:
    reader = TableReader(table_id)
    reader.feed(path.read_text(encoding="utf-8"))
    return reader


def md_section_table(text: str, heading: str) -> list[list[str]]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def test_writes_both_files_under_the_run_id(reports: tuple[RunSummary, Path, Path]) -> None:
    summary, md, html = reports
    assert md.name == "report.md" and html.name == "report.html"
    assert md.parent.name == summary.run.id == html.parent.name


def test_markdown_and_html_agree_on_every_results_figure(reports: tuple[RunSummary, Path, Path]) -> None:
    summary, md, html = reports
    md_rows = md_section_table(md.read_text(encoding="utf-8"), "Results")
    html_rows = [row for row in read_html(html).rows if row]
    assert len(md_rows) == len(summary.models) == len(html_rows)
    assert md_rows == html_rows
    first = summary.models[0]
    assert md_rows[0][0] == first.name
    valid = first.score.valid_json
    assert md_rows[0][2] == f"{valid.value:.0%} [{valid.low:.0%}, {valid.high:.0%}]"
    f1 = first.score.as_is.entities.f1
    assert md_rows[0][3] == f"{f1.value:.2f} [{f1.low:.2f}, {f1.high:.2f}]"


def test_markdown_holds_every_section_and_the_run_metadata(reports: tuple[RunSummary, Path, Path]) -> None:
    summary, md, _ = reports
    text = md.read_text(encoding="utf-8")
    for heading in (
        "Verdict",
        "Results",
        "Content view",
        "By difficulty",
        "Selection",
        "Trainable potential",
        "Deploy now",
        "Thinking and truncation",
        "Run metadata",
    ):
        assert re.search(rf"^#+ {heading}$", text, re.MULTILINE), heading
    assert summary.run.evalset_hash in text
    assert summary.run.benchsel_version in text
    snapshot = summary.models[0].snapshot
    assert snapshot.digest[:19] in text
    assert "Winner for fine-tuning" in text and "Winner to deploy now" in text
    thinker = next(m for m in summary.models if m.speed.thinking_replies)
    assert f"{thinker.name}: {thinker.speed.thinking_replies} of {thinker.speed.replies} replies" in text
    assert f"cut off at the token limit (num_predict {summary.run.options['num_predict']})" in text
    difficulty_rows = md_section_table(text, "By difficulty")
    assert {row[1] for row in difficulty_rows} <= {"simple", "medium", "complex", "adversarial"}


def test_markdown_escapes_model_text(reports: tuple[RunSummary, Path, Path]) -> None:
    _, md, _ = reports
    text = md.read_text(encoding="utf-8")
    assert "<script" not in text and "<img" not in text


def test_html_loads_nothing_from_anywhere(reports: tuple[RunSummary, Path, Path]) -> None:
    _, _, html = reports
    reader = read_html(html)
    for tag, attribute, url in reader.urls:
        assert url.startswith(("#", "data:image/png;base64,")), (tag, attribute, url[:80])
    text = html.read_text(encoding="utf-8")
    assert "default-src 'none'" in text
    assert not re.search(r"@import|url\(\s*['\"]?(?!data:|#)", text)


def test_html_runs_only_its_own_script(reports: tuple[RunSummary, Path, Path]) -> None:
    _, _, html = reports
    text = html.read_text(encoding="utf-8")
    assert read_html(html).scripts == 1
    script = text.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in text
    assert "window.__pwned" not in script


def test_html_shows_hostile_model_text_escaped(reports: tuple[RunSummary, Path, Path]) -> None:
    _, _, html = reports
    text = html.read_text(encoding="utf-8")
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=" in text
    assert "{{ 7*7 }}" in text
    assert "<img" not in text and 'onerror="window' not in text


def test_html_has_cards_plots_and_a_drill_down_per_case(reports: tuple[RunSummary, Path, Path]) -> None:
    summary, _, html = reports
    text = html.read_text(encoding="utf-8")
    for key in ("quality-speed", "format-debt", "vram", "heatmap"):
        figure = text.split(f'id="plot-{key}"', 1)[1].split("</figure>", 1)[0]
        assert "<svg" in figure and "</svg>" in figure, key
    assert text.count('<details class="case"') == len(summary.evalset.cases)
    assert "Winner for fine-tuning" in text and "Budget used" in text
    assert "@media print" in text


def test_report_without_selection_says_how_to_get_one(tmp_path: Path) -> None:
    store, summary = make_run(tmp_path, cases=6, profiles=2)
    store.close()
    (md,) = write_report(summary, None, tmp_path / "out", "md")
    text = md.read_text(encoding="utf-8")
    assert "No selection was made" in text and "## Selection" not in text


@pytest.mark.parametrize(
    ("given", "expected"), [("md", ("md",)), ("html,md", ("md", "html")), (["HTML"], ("html",))]
)
def test_parse_formats(given: str | list[str], expected: tuple[str, ...]) -> None:
    assert parse_formats(given) == expected


def test_parse_formats_refuses_unknown() -> None:
    with pytest.raises(UsageError, match="unknown report format pdf - use md, html"):
        parse_formats("md,pdf")


def test_cli_report_writes_files_with_the_constraints(tmp_path: Path) -> None:
    store, summary = make_run(tmp_path, cases=6, profiles=3)
    store.close()
    args = ["report", summary.run.id, "--db", str(tmp_path / "runs.sqlite"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--vram", "8GiB", "--reserve", "3GiB", "--format", "md"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / summary.run.id / "report.md"
    assert result.output == f"Wrote {path}\n"
    assert "Constraints: VRAM 8.0 GiB, reserve 3.0 GiB" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "pdf"], "unknown report format pdf"),
        (["--vram", "lots"], "cannot read 'lots' as a size"),
    ],
)
def test_cli_report_usage_errors_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    store, summary = make_run(tmp_path, cases=4, profiles=1)
    store.close()
    args = ["report", summary.run.id, "--db", str(tmp_path / "runs.sqlite"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_cli_report_unknown_run_exits_2(tmp_path: Path) -> None:
    Store(tmp_path / "runs.sqlite").close()
    result = CliRunner().invoke(cli, ["report", "nope", "--db", str(tmp_path / "runs.sqlite")])
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output


def failed_model(summary: RunSummary, name: str) -> ModelSummary:
    results = [
        StoredResult(summary.run.id, name, case.id, 0, "", None, "rejected:http_400", "exceeds the context")
        for case in summary.evalset.cases
    ]
    return summarize_model(summary.evalset, name, results, backend="llamacpp")


def test_a_failed_model_is_a_failed_row_and_no_winner_is_explained(tmp_path: Path) -> None:
    store, summary = make_run(tmp_path, profiles=2)
    store.close()
    broken = failed_model(summary, "broken:1b")
    n = len(summary.evalset.cases)
    mixed = RunSummary(summary.run, summary.evalset, (*summary.models, broken))
    md_path, _ = write_report(mixed, select(mixed), tmp_path / "mixed", ("md", "html"))
    md = md_path.read_text()
    row = next(line for line in md.splitlines() if line.startswith("| broken:1b |"))
    assert f"failed: {n} rejected:http_400" in row and "1.00" not in row
    assert f"broken:1b: failed: {n} requests failed ({n} rejected:http_400), no scored reply" in md

    only = RunSummary(summary.run, summary.evalset, (broken,))
    md_path, html_path = write_report(only, select(only), tmp_path / "only", ("md", "html"))
    reason = "no winner: every model failed (broken:1b): no reply could be scored"
    assert reason in md_path.read_text() and reason in html_path.read_text()
