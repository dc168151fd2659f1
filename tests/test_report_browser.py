"""report.html in a real headless Chromium, driven over the DevTools protocol on a pipe (no extra
packages): no console errors, no requests, tables and plots rendered, sorting, hostile model text inert.

The screenshot goes to tmp_path, and to docs/report-screenshot.png when that file is missing or
BENCHSEL_UPDATE_SCREENSHOT=1."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_report import PAYLOAD, add_hostile_reply

from benchsel.report import write_report
from benchsel.report.demo import DEMO_PROFILES, write_demo_evalset, write_demo_run
from benchsel.selection import Constraints
from benchsel.selection import select as select_models
from benchsel.store import Store
from benchsel.summary import summarize_run

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("BENCHSEL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report-screenshot.png"
GIB = 1024**3


class DevTools:
    """A headless Chromium and its DevTools protocol over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        to_child_r, self._write = os.pipe()
        self._read, from_child_w = os.pipe()
        # move the child's ends above 10 so dup2 onto 3 and 4 cannot clobber them
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--window-size=1280,1600",
                "about:blank",
            ],
            preexec_fn=wire,
            pass_fds=(child_in, child_out, 3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _receive(self, timeout: float = 60) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], timeout)
            if not ready:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        result: dict[str, Any] = json.loads(message)
        return result

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                answer: dict[str, Any] = reply.get("result", {})
                return answer
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive(max(0.1, deadline - time.monotonic())))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})
        attached = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Runtime", "Network", "Page", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._read)
        os.close(self._write)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevTools, Path]]:
    if not Path(CHROMIUM).exists():
        # `make test` installs it; a missing browser is a broken setup, not a reason to pass quietly.
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium or set BENCHSEL_CHROMIUM")
    tmp = tmp_path_factory.mktemp("browser")
    evalset = write_demo_evalset(tmp / "evalset", 20, seed=7)
    with Store(tmp / "runs.sqlite") as store:
        write_demo_run(store, evalset, DEMO_PROFILES[:7], run_id="browser-demo", seed=1)
        add_hostile_reply(store, "browser-demo", evalset, DEMO_PROFILES[1].name)
        summary = summarize_run(store, "browser-demo")
    selection = select_models(summary, Constraints.of(vram_bytes=8 * GIB, reserve_bytes=3 * GIB))
    (html,) = write_report(summary, selection, tmp / "out", "html")
    browser = DevTools(tmp / "profile")
    try:
        browser.open(html.as_uri())
        yield browser, html
    finally:
        browser.close()


def test_no_console_errors_and_no_requests(page: tuple[DevTools, Path]) -> None:
    browser, html = page
    assert browser.evaluate("document.documentElement.getAttribute('data-ready')") == "1"
    errors = [
        e["params"]
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requested[0] == html.as_uri()
    assert [url for url in requested if url != html.as_uri() and not url.startswith("data:")] == []


def test_results_table_and_every_plot_render(page: tuple[DevTools, Path]) -> None:
    browser, _ = page
    assert browser.evaluate("document.querySelectorAll('#results-table tbody tr').length") == 7
    sizes = browser.evaluate(
        "Array.from(document.querySelectorAll('figure.plot')).map(f => {"
        " const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0};"
        " return [f.id, r.width, r.height, s ? s.querySelectorAll('path, text, image').length : 0]; })"
    )
    assert [s[0] for s in sizes] == ["plot-quality-speed", "plot-format-debt", "plot-vram", "plot-heatmap"]
    for plot_id, width, height, marks in sizes:
        assert width > 100 and height > 100 and marks > 10, plot_id


def test_clicking_a_header_sorts_the_table(page: tuple[DevTools, Path]) -> None:
    browser, _ = page
    read = (
        "Array.from(document.querySelectorAll('#results-table tbody tr'))"
        ".map(r => [r.cells[0].textContent, Number(r.cells[3].getAttribute('data-sort'))])"
    )
    header = "document.querySelectorAll('#results-table thead th')[3]"
    before = browser.evaluate(read)
    browser.evaluate(f"{header}.querySelector('button').click()")
    descending = browser.evaluate(read)
    assert [v for _, v in descending] == sorted((v for _, v in before), reverse=True)
    assert browser.evaluate(f"{header}.getAttribute('aria-sort')") == "descending"
    browser.evaluate(f"{header}.querySelector('button').click()")
    ascending = browser.evaluate(read)
    assert ascending != before
    assert [v for _, v in ascending] == sorted(v for _, v in before)
    assert browser.evaluate(f"{header}.getAttribute('aria-sort')") == "ascending"
    browser.evaluate(
        "document.querySelectorAll('#results-table thead th')[0].querySelector('button').click()"
    )
    names = [name for name, _ in browser.evaluate(read)]
    assert names == sorted(names, key=str.lower) != [name for name, _ in before]


def test_hostile_model_text_is_shown_and_never_runs(page: tuple[DevTools, Path]) -> None:
    browser, _ = page
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    browser.evaluate("document.getElementById('expand-all').click()")
    shown = browser.evaluate(
        "Array.from(document.querySelectorAll('pre.raw')).map(p => p.innerText)"
        ".filter(t => t.includes('__pwned'))"
    )
    assert len(shown) == 1
    assert PAYLOAD.split("\n")[0] in shown[0]
    assert "{{ 7*7 }}" in shown[0] and "49" not in shown[0]
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    browser.evaluate("document.getElementById('collapse-all').click()")


def test_screenshot(page: tuple[DevTools, Path], tmp_path: Path) -> None:
    browser, _ = page
    browser.evaluate("window.scrollTo(0, 0)")
    shot = browser.send(
        "Page.captureScreenshot",
        {"format": "png", "clip": {"x": 0, "y": 0, "width": 1280, "height": 1600, "scale": 1}},
    )
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (tmp_path / "report.png").write_bytes(png)
    if not SCREENSHOT.exists() or os.environ.get("BENCHSEL_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "report.png", SCREENSHOT)
