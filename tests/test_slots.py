"""-j: a number or 'auto', picked for the engine and the hardware; on the real engine through the CLI,
with --no-prompt-cache."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchsel import slots
from benchsel.backends.ollama import OllamaBackend
from benchsel.cli.main import main
from benchsel.errors import UsageError


def test_concurrency_is_a_number_of_at_least_one_or_auto() -> None:
    assert slots.parse_concurrency("auto") == "auto"
    assert slots.parse_concurrency(" AUTO ") == "auto"
    assert slots.parse_concurrency("3") == 3
    assert slots.parse_concurrency(2) == 2
    with pytest.raises(UsageError, match="at least 1"):
        slots.parse_concurrency("0")
    with pytest.raises(UsageError, match="'auto'"):
        slots.parse_concurrency("many")


def test_auto_gives_the_embedded_engine_4_slots_on_a_cpu_8_on_a_gpu_never_more_than_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slots, "_has_gpu", lambda: False)
    assert slots.auto_engine_slots(100)[0] == slots.CPU_SLOTS
    assert slots.auto_engine_slots(2) == (2, "-j auto: 2 slots for the embedded engine on the CPU")
    monkeypatch.setattr(slots, "_has_gpu", lambda: True)
    assert slots.auto_engine_slots(100) == (8, "-j auto: 8 slots for the embedded engine on a GPU")


class LlamaServerLike:
    name = "openai"

    def __init__(self, slots: int | None) -> None:
        self.slots = slots

    def slots_for(self, model: str) -> int | None:
        return self.slots


def test_auto_for_other_servers_follows_their_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    assert slots.auto_backend_concurrency(LlamaServerLike(6), "m", 100)[0] == 6
    assert slots.auto_backend_concurrency(LlamaServerLike(None), "m", 100)[0] == slots.OTHER_SERVER_SLOTS
    monkeypatch.delenv("OLLAMA_NUM_PARALLEL", raising=False)
    ollama = OllamaBackend("http://127.0.0.1:9")
    assert slots.auto_backend_concurrency(ollama, "m", 100)[0] == 1
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "3")
    assert slots.auto_backend_concurrency(ollama, "m", 100) == (
        3,
        "-j auto: 3 concurrent requests (OLLAMA_NUM_PARALLEL)",
    )


def test_a_bad_j_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--backend", "llamacpp", "--models", "smollm2:135m", "-j", "lots"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--db", str(tmp_path / "r.sqlite")])
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and "-j 'lots': must be a whole number at least 1 or 'auto'" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_j_auto_and_no_prompt_cache_on_the_embedded_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite"
    args = ["run", "--models", "smollm2:135m", "--backend", "llamacpp", "--limit", "2", "--num-predict", "8"]
    args += ["-j", "auto", "--no-prompt-cache", "--no-report", "--db", str(db)]
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "prompt cache: off (--no-prompt-cache" in out
    with sqlite3.connect(db) as con:
        options, hardware = con.execute("SELECT options_json, hardware_json FROM runs").fetchone()
        contention = con.execute("SELECT contention_json FROM models").fetchone()[0]
    options, hardware = json.loads(options), json.loads(hardware)
    assert options["prompt_cache"] is False and options["concurrency"] == 2  # auto, capped at 2 cases
    assert hardware["engine"]["concurrency"].startswith("-j auto: 2 slots")
    assert hardware["engine"]["threads"] >= 1 and "thread" in hardware["engine"]["threads_reason"]
    assert json.loads(contention)["engine_threads"] == hardware["engine"]["threads"]
