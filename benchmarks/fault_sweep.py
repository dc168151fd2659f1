"""The fault sweep's repro commands for the I/O and process faults (docs/reliability.md): each row runs
`python -m benchsel` as a user would against tests/fault_servers.py or the embedded engine.

Run from the repository root, as root (it mounts a small tmpfs and a read-only bind mount under
/tmp/fio): engine-lock env PYTHONPATH=$PWD python benchmarks/fault_sweep.py. Results: /tmp/fio/sweep.json.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "tests"))
from fault_servers import FaultServer, wait_until  # noqa: E402
from helpers import engine_pids, pid_alive  # noqa: E402

WORK = Path("/tmp/fio/work")
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
ENV = {**os.environ, "PYTHONPATH": str(Path.cwd()), "COLUMNS": "200"}
BENCHSEL = (sys.executable, "-m", "benchsel")
ES = ("--evalset", "extraction-v1", "--limit", "3", "--no-report")
rows: list[dict[str, object]] = []


def bs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [*BENCHSEL, *args],
            capture_output=True,
            text=True,
            cwd=WORK,
            env={**ENV, **(env or {})},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -9, "", "TIMEOUT")


def record(
    fid: str, what: str, result: subprocess.CompletedProcess[str] | None, ok: bool, note: str = ""
) -> None:
    first = ""
    if result is not None:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        first = errors[0] if errors else tail[0]
    tb = result is not None and "Traceback" in result.stderr
    rows.append(
        {
            "id": fid,
            "what": what,
            "exit": None if result is None else result.returncode,
            "traceback": tb,
            "verdict": "ok" if ok and not tb else "BAD",
            "line": first[:160],
            "note": note,
        }
    )
    print(json.dumps(rows[-1]), flush=True)


def one_line(result: subprocess.CompletedProcess[str], code: int) -> bool:
    return (
        result.returncode == code and "Traceback" not in result.stderr and result.stderr.count("Error:") == 1
    )


def count(db: Path, query: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute(query).fetchone()[0])


def openai_run(base_url: str, db: Path, *more: str) -> tuple[str, ...]:
    """`benchsel run` of model "m" on three cases against an OpenAI-compatible (fault) server."""
    return (
        "run",
        *ES,
        "--db",
        str(db),
        "--backend",
        "openai",
        "--base-url",
        base_url,
        "--models",
        "m",
        *more,
    )


with FaultServer(trickle_s=1.0) as srv:
    # C31/C32: odd replies
    for fid, mode in (("C31", "surrogate"), ("C32", "object"), ("C32b", "list"), ("C32c", "number")):
        db = WORK / f"{mode}.sqlite"
        r = bs(*openai_run(f"{srv.url}/{mode}/v1", db, "--retries", "0"))
        n = (
            count(db, "SELECT COUNT(*) FROM results WHERE content IS NOT NULL AND error_kind IS NULL")
            if db.exists()
            else 0
        )
        record(fid, f"reply content {mode}", r, r.returncode == 0 and n == 3, f"{n}/3 replies stored")
    # C23: trickle with --timeout 5
    started = time.monotonic()
    r = bs(
        *openai_run(f"{srv.url}/trickle/v1", WORK / "t.sqlite", "--timeout", "5", "--retries", "0"),
        timeout=90,
    )
    took = time.monotonic() - started
    record(
        "C23",
        "trickling server, --timeout 5",
        r,
        r.returncode == 1 and took < 30,
        f"ended after {took:.1f} s",
    )
    # C24/C25: base URL
    for fid, url in (("C24", "not-a-url"), ("C25", "ftp://127.0.0.1/v1")):
        r = bs(*openai_run(url, WORK / "u.sqlite"))
        record(fid, f"--base-url {url}", r, one_line(r, 2))
    # C27-C30: hosts
    for fid, env, args in (
        (
            "C27",
            {"OLLAMA_HOST": "http://[::1"},
            ("run", *ES, "--models", "smollm2:135m", "--db", str(WORK / "h.sqlite")),
        ),
        ("C28", {"OLLAMA_HOST": "http://127.0.0.1:99999"}, ("models", "--backend", "ollama")),
        ("C29", {}, ("models", "--backend", "ollama", "--host", "ht!tp://%%%")),
        ("C30", {"OLLAMA_HOST": ":::garbage::::"}, ("models", "--backend", "ollama")),
    ):
        r = bs(*args, env=env)
        record(fid, f"host {env or args[-1]}", r, one_line(r, 2))
    # issue 12: no Ollama, not-Ollama, 501
    r = bs(
        "run",
        *ES,
        "--models",
        "gemma3:4b",
        "--db",
        str(WORK / "n.sqlite"),
        env={"OLLAMA_HOST": "http://127.0.0.1:9"},
    )
    record(
        "I12a",
        "gemma3:4b without Ollama (auto)",
        r,
        one_line(r, 2) and "127.0.0.1:9" in r.stderr and "ollama serve" in r.stderr,
    )
    with FaultServer(not_ollama=True) as web:
        r = bs(
            "run",
            *ES,
            "--backend",
            "ollama",
            "--host",
            web.url,
            "--models",
            "gemma3:4b",
            "--db",
            str(WORK / "n.sqlite"),
        )
        record(
            "I12b",
            "OLLAMA_HOST is not Ollama (404)",
            r,
            one_line(r, 2) and "not pulled" not in r.stderr and "not Ollama" in r.stderr,
        )
    r = bs(*openai_run(f"{srv.url}/html501/v1", WORK / "h5.sqlite", "--retries", "0"))
    record(
        "I12c",
        "501 with an HTML page",
        r,
        r.returncode == 1 and "<" not in r.stderr and "Traceback" not in r.stderr,
    )

    # store faults
    good = WORK / "good.sqlite"
    bs(*openai_run(f"{srv.url}/ok/v1", good))
    shutil.copy(good, WORK / "smash.sqlite")
    data = bytearray((WORK / "smash.sqlite").read_bytes())
    for page in range(1, len(data) // 4096):
        data[page * 4096 : page * 4096 + 12] = b"\xff" * 12
    (WORK / "smash.sqlite").write_bytes(bytes(data))
    for cmd in (("runs",), ("report", "latest", "--out", str(WORK / "rep"))):
        r = bs(*cmd, "--db", str(WORK / "smash.sqlite"))
        record("D20", f"b-tree pages smashed: {cmd[0]}", r, one_line(r, 1) and "damaged" in r.stderr)
    shutil.copy(good, WORK / "undecodable.sqlite")
    with sqlite3.connect(WORK / "undecodable.sqlite") as c:
        c.execute("UPDATE results SET cache_key = CAST(X'FFFE00' AS TEXT)")
    r = bs(*openai_run(f"{srv.url}/ok/v1", WORK / "undecodable.sqlite", "--fresh"))
    record(
        "D16",
        "undecodable bytes in a row",
        r,
        r.returncode in (0, 1) and "Traceback" not in r.stderr,
        f"exit {r.returncode}",
    )
    with sqlite3.connect(WORK / "foreign.sqlite") as c:
        c.execute("create table runs (x)")
    for cmd in (
        ("runs", "--db", str(WORK / "foreign.sqlite")),
        openai_run(f"{srv.url}/ok/v1", WORK / "foreign.sqlite"),
    ):
        r = bs(*cmd)
        record(
            "D28",
            f"foreign SQLite file: {cmd[0]}",
            r,
            one_line(r, 2) and "not a benchsel run store" in r.stderr,
        )
    # disk full: a 1 MB tmpfs, mostly filled, when mounting is permitted
    small = WORK / "small"
    small.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)]
    if subprocess.run(mount, capture_output=True).returncode == 0:
        try:
            filler = ["dd", "if=/dev/zero", f"of={small}/filler", "bs=1k", "count=780"]
            subprocess.run(filler, capture_output=True)
            big = ("run", "--evalset", "extraction-v1", "--no-report", "--backend", "openai")
            big += ("--base-url", f"{srv.url}/big/v1", "--models", "m", "--db", str(small / "b.sqlite"))
            r = bs(*big)
            kept = count(small / "b.sqlite", "SELECT COUNT(*) FROM results")
            full = one_line(r, 1) and "disk is full" in r.stderr
            record("D30", "disk full mid-run", r, full, f"{kept} replies kept")
            (small / "filler").unlink()
            r = bs(*big)
            query = "SELECT COUNT(DISTINCT case_id) FROM results WHERE error_kind IS NULL"
            total = count(small / "b.sqlite", query)
            resumed = r.returncode == 0 and "resuming" in r.stdout and total == 24
            record("D31", "resume after freeing space", r, resumed, f"{total}/24 cases")
        finally:
            subprocess.run(["umount", "-l", str(small)])
    else:
        record("D30", "disk full mid-run", None, False, "tmpfs mount not permitted here")
    # read-only store
    ro = WORK / "ro"
    ro.mkdir()
    shutil.copy(good, ro / "good.sqlite")
    if subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True).returncode == 0:
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
            r = bs("runs", "--db", str(ro / "good.sqlite"))
            record("D25", "store on a read-only mount: runs", r, r.returncode == 0 and "m" in r.stdout)
            r = bs(*openai_run(f"{srv.url}/ok/v1", ro / "good.sqlite", "--fresh"))
            record("D25b", "store on a read-only mount: run", r, one_line(r, 1) and "cp " in r.stderr)
        finally:
            subprocess.run(["umount", "-l", str(ro)])
    else:
        record("D25", "store on a read-only mount", None, False, "bind mount not permitted here")
    # mistyped --db
    r = bs("runs", "--db", str(WORK / "typo" / "deeper" / "x.sqlite"))
    record("D40", "mistyped --db (two folders missing)", r, one_line(r, 2) and not (WORK / "typo").exists())
    # --out unwritable
    (WORK / "afile").write_text("x")
    for fid, out in (("R26", str(WORK / "afile")), ("D32", "/proc/x")):
        r = bs("report", "latest", "--db", str(good), "--out", out)
        record(fid, f"report --out {out}", r, one_line(r, 2))

    # D35: two runs on one store
    srv.openai_mode = "silent"
    db = WORK / "two.sqlite"
    cmd = [*BENCHSEL, *openai_run(f"{srv.url}/v1", db)]
    first = subprocess.Popen(cmd, cwd=WORK, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(
        lambda: (
            db.exists()
            and count(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='leases'")
            and count(db, "SELECT COUNT(*) FROM leases WHERE run_id IS NOT NULL")
        ),
        60,
    )
    second = subprocess.run(cmd, cwd=WORK, env=ENV, capture_output=True, text=True, timeout=60)
    record(
        "D35",
        "second run of the same command on one store",
        second,
        one_line(second, 1) and "already running" in second.stderr,
    )
    first.kill()
    first.wait()
    srv.openai_mode = None

# P01/P02/P04: the engine under signals
ENGINE = (
    "run",
    "--backend",
    "llamacpp",
    "--models",
    "smollm2:135m",
    "--evalset",
    "extraction-v1",
    "--limit",
    "6",
    "--num-predict",
    "48",
    "--no-report",
    "--threads",
    "2",
)


for fid, how in (
    ("P01", "SIGTERM"),
    ("P02", "SIGKILL"),
    ("P03", "SIGINT pid"),
    ("P04", "SIGINT group (Ctrl-C)"),
):
    db = WORK / f"{fid}.sqlite"
    proc = subprocess.Popen(
        [*BENCHSEL, *ENGINE, "--db", str(db)],
        cwd=WORK,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_until(
        lambda db=db: (
            db.exists()
            and count(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='results'")
            and count(db, "SELECT COUNT(*) FROM results") >= 2
        ),
        300,
    )
    engines = engine_pids(proc.pid)
    before = count(db, "SELECT COUNT(*) FROM results")
    started = time.monotonic()
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    elif how == "SIGKILL":
        proc.kill()
    elif how == "SIGINT pid":
        proc.send_signal(signal.SIGINT)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    took = time.monotonic() - started
    time.sleep(3)
    orphans = [p for p in engines if pid_alive(p)]
    for p in orphans:
        os.kill(p, signal.SIGKILL)
    listing = subprocess.run(
        [*BENCHSEL, "runs", "--db", str(db)],
        cwd=WORK,
        env=ENV,
        capture_output=True,
        text=True,
    )
    status_ok = "interrupted" in listing.stdout
    again = subprocess.run(
        [*BENCHSEL, *ENGINE, "--db", str(db)],
        cwd=WORK,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    with sqlite3.connect(db) as c:
        per_case = c.execute(
            "SELECT COUNT(*), COUNT(DISTINCT case_id) FROM results WHERE error_kind IS NULL"
        ).fetchone()
    ok = not orphans and status_ok and again.returncode == 0 and per_case == (6, 6) and took < 15
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    record(
        fid,
        how,
        result,
        ok,
        f"engines {engines} orphaned {orphans}; ended in {took:.1f} s; {before} replies before; "
        f"listed interrupted={status_ok}; resumed rc {again.returncode}; answered/cases {per_case}",
    )

held = sum(r["verdict"] == "ok" for r in rows)
print(f"TOTAL {len(rows)} rows: {held} ok, {len(rows) - held} bad")
Path("/tmp/fio/sweep.json").write_text(json.dumps(rows, indent=1))
