"""`benchsel run` and `benchsel runs` as a person uses them: real engine, exit codes, the lines printed."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from benchsel.cli.main import main


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_run_on_the_embedded_engine_prints_the_table_and_writes_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out = tmp_path / "runs.sqlite", tmp_path / "reports"
    args = ["run", "--models", "smollm2:135m", "--backend", "llamacpp", "--limit", "2", "--num-predict", "16"]
    args += ["--db", str(db), "--out", str(out)]
    code, stdout, stderr = invoke(args, capsys)
    assert code == 0, stderr
    assert "Valid JSON" in stdout and "Content F1" in stdout and "smollm2:135m" in stdout
    assert "smollm2:135m on llamacpp" in stdout
    run_id = stdout.split("run id: ")[1].split()[0]
    assert (out / run_id / "report.md").is_file() and (out / run_id / "report.html").is_file()

    code, stdout, _ = invoke(args, capsys)  # the same command again: resumes, sends nothing
    assert code == 0 and f"resuming {run_id}" in stdout

    code, stdout, _ = invoke(["runs", "--db", str(db)], capsys)
    assert code == 0 and run_id in stdout and "complete" in stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backend", "llamacpp", "--models", "nope:1b"], "smollm2:135m"),
        (["--backend", "llamacpp", "--models", "smollm2:135m", "--evalset", "no-such-set"], "evalset list"),
        (["--backend", "openai", "--models", "m"], "--base-url"),
        (["--backend", "llamacpp", "--models", " , "], "--models"),
        (["--backend", "llamacpp", "--models", "smollm2:135m", "-j", "0"], "at least 1"),
        (["--backend", "llamacpp", "--models", "smollm2:135m", "--limit", "0"], "--limit 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = invoke(["run", *args, "--db", str(tmp_path / "r.sqlite")], capsys)
    assert code == 2
    assert expected in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--timeout", "-1", "Error: --timeout -1.0: must be a number above 0 seconds, e.g. --timeout 300"),
        ("--timeout", "inf", "Error: --timeout inf: must be a number above 0 seconds, e.g. --timeout 300"),
        (
            "--temperature",
            "nan",
            "Error: --temperature nan: must be a number at least 0, e.g. --temperature 0",
        ),
        ("--limit", "0", "Error: --limit 0: must be a whole number at least 1, e.g. --limit 5"),
        ("--limit", "-1", "Error: --limit -1: must be a whole number at least 1, e.g. --limit 5"),
        (
            "--num-predict",
            "0",
            "Error: --num-predict 0: must be a whole number at least 1, e.g. --num-predict 1024",
        ),
        ("--num-predict", "-5", "Error: --num-predict -5: must be a whole number at least 1"),
        ("--num-ctx", "0", "Error: --num-ctx 0: must be a whole number at least 1, e.g. --num-ctx 4096"),
        ("--threads", "-4", "Error: --threads -4: must be a whole number at least 1, e.g. --threads 4"),
        ("-j", "0", "Error: -j 0: must be a whole number at least 1, e.g. -j 2"),
        ("--repeats", "0", "Error: --repeats 0: must be a whole number at least 1, e.g. --repeats 3"),
        ("--retries", "-1", "Error: --retries -1: must be a whole number at least 0, e.g. --retries 3"),
        ("--limit", "two", "Error: --limit 'two': must be a whole number at least 1"),
    ],
)
def test_numeric_options_out_of_range_are_one_line_and_exit_2(
    option: str, value: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.sqlite"
    args = ["run", "--backend", "llamacpp", "--models", "smollm2:135m", option, value, "--db", str(db)]
    code, _, stderr = invoke(args, capsys)
    assert code == 2
    assert stderr.strip().startswith(expected)
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not db.exists()  # refused before anything was opened or started


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("timeout_s", -1.0, "--timeout -1.0: must be a number above 0 seconds"),
        ("temperature", float("nan"), "--temperature nan: must be a number at least 0"),
        ("limit", 0, "--limit 0: must be a whole number at least 1"),
        ("num_predict", 0, "--num-predict 0"),
        ("num_ctx", 0, "--num-ctx 0"),
        ("threads", -4, "--threads -4"),
        ("concurrency", 0, "-j 0"),
        ("repeats", 0, "--repeats 0"),
    ],
)
def test_the_library_call_checks_the_same_bounds(
    keyword: str, value: float, expected: str, tmp_path: Path
) -> None:
    from benchsel import api
    from benchsel.errors import UsageError

    with pytest.raises(UsageError, match=re.escape(expected)) as info:
        api.run("smollm2:135m", backend="llamacpp", db=tmp_path / "r.sqlite", **{keyword: value})
    assert info.value.exit_code == 2
    assert not (tmp_path / "r.sqlite").exists()


def test_the_options_are_one_record_and_keywords_win(tmp_path: Path) -> None:
    from benchsel import api
    from benchsel.errors import UsageError

    options = api.RunOptions(backend="llamacpp", db=tmp_path / "r.sqlite", limit=0)
    with pytest.raises(UsageError, match=re.escape("--limit 0: must be a whole number at least 1")):
        api.run("smollm2:135m", options)
    with pytest.raises(UsageError, match=re.escape("--repeats 0")):
        api.run("smollm2:135m", options, limit=2, repeats=0)
    with pytest.raises(TypeError, match="nosuch"):
        api.run("smollm2:135m", options, nosuch=1)
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.integration
def test_a_model_with_no_scored_reply_is_failed_and_the_run_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a context of 16 tokens cannot hold the prompt: llama-server rejects every request (HTTP 400)
    args = ["run", "--backend", "llamacpp", "--models", "smollm2:135m", "--num-ctx", "16", "--limit", "1"]
    args += ["--num-predict", "4", "--no-report", "--db", str(tmp_path / "r.sqlite")]
    code, stdout, stderr = invoke(args, capsys)
    assert code == 1
    assert "failed: 1 rejected:" in stdout
    assert "1.00" not in stdout  # no perfect score made of nothing
    note = next(line for line in stdout.splitlines() if line.startswith("note smollm2:135m"))
    assert "failed: 1 request failed (1 rejected:" in note and "left out of the rankings" in note
    assert stderr.strip().startswith("Error: run ") and "no model produced a scored reply" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_unreachable_ollama_says_how_to_start_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    args = ["run", "--backend", "ollama", "--host", host, "--models", "gemma3:4b"]
    code, _, stderr = invoke([*args, "--db", str(tmp_path / "r.sqlite")], capsys)
    assert code == 2
    assert "ollama serve" in stderr and "OLLAMA_HOST" in stderr


def test_runs_on_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = invoke(["runs", "--db", str(tmp_path / "empty.sqlite")], capsys)
    assert code == 0 and "no runs yet" in stdout


@pytest.mark.integration  # reads the demo GGUFs
def test_pull_of_a_model_ollama_does_not_know_is_one_clear_error(
    smollm2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ollama_loopback import FakeModel, FakeOllama

    with FakeOllama([FakeModel("smollm2:135m", smollm2_path, None)]) as fake:
        args = ["run", "--backend", "ollama", "--host", fake.url, "--models", "nosuch:1b", "--pull"]
        code, _, stderr = invoke([*args, "--db", str(tmp_path / "r.sqlite")], capsys)
        pulls = [body for path, body in fake.requests if path == "/api/pull"]
    assert code == 2
    assert "nosuch:1b" in stderr and "cannot be pulled" in stderr
    assert [body.get("model") for body in pulls] == ["nosuch:1b"]
