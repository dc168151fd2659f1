"""Ray mode against a real local Ray cluster (a head and a worker process on loopback, started here):
SmolLM2 benchmarked by a task on the node with the GPU the task asks for, replies streamed back and
stored; the results, cache keys and run key equal a local run's, and a second run resumes. And
`benchsel probe --ray` on the train tests' tiny model: its probe is stored as a local probe is."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from test_probe_e2e import build_tiny_gguf, invoke

from benchsel import api, runner
from benchsel.backends.llamacpp import LlamaCppBackend
from benchsel.evalset import load_evalset
from benchsel.raymode import EngineChoice, NodeResources, run_on_ray
from benchsel.records import RequestOptions
from benchsel.store import Store

pytestmark = pytest.mark.integration

MODEL = "smollm2:135m"
OPTIONS = RequestOptions(num_ctx=2048, num_predict=24, timeout_s=120)
# Ray's token authentication is for clusters reached over a network; this one lives and dies here.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray_start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    ray_cli = Path(sys.executable).with_name("ray")
    command = [str(ray_cli) if ray_cli.exists() else "ray", "start", "--block", "--disable-usage-stats"]
    with log.open("wb") as out:
        return subprocess.Popen([*command, *args], stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A head (1 CPU, no GPU) and a worker (1 CPU, one logical GPU); yields (address, worker node id)."""
    workdir = tmp_path_factory.mktemp("ray")
    tree = str(Path(__file__).resolve().parents[1])  # the workers import this tree's benchsel
    env = {
        **os.environ,
        **RAY_ENV,
        "PYTHONPATH": os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")])),
    }
    address = f"127.0.0.1:{_free_port()}"
    small = ["--num-cpus", "1", "--object-store-memory", str(100 * 1024**2)]
    head = _ray_start(
        ["--head", "--port", address.split(":")[1], "--num-gpus", "0", "--include-dashboard", "false",
         "--temp-dir", str(workdir), *small],
        workdir / "head.log",
        env,
    )  # fmt: skip
    processes = [head]
    old_env = {key: os.environ.get(key) for key in RAY_ENV}
    os.environ.update(RAY_ENV)
    try:
        time.sleep(3)
        processes.append(
            _ray_start(["--address", address, "--num-gpus", "1", *small], workdir / "worker.log", env)
        )
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        deadline = time.monotonic() + 90
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline, (workdir / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
        worker = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU"))
        yield address, worker
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_ray_run_equals_a_local_run_and_resumes(cluster: tuple[str, str], tmp_path: Path) -> None:
    address, worker = cluster
    spec = runner.RunSpec(models=(MODEL,), evalset=load_evalset("extraction-v1"), options=OPTIONS, limit=3)
    engine = EngineChoice("llamacpp", threads=1)

    with Store(tmp_path / "ray.sqlite") as store:
        record = run_on_ray(spec, store, address=address, engine=engine, resources=NodeResources(num_gpus=1))
        remote = store.results(record.id)
        (model_row,) = store.models(record.id)
        events: list[runner.Event] = []
        again = run_on_ray(spec, store, address=address, engine=engine, on_event=events.append)
        assert again.id == record.id and len(store.results(record.id, latest_only=False)) == len(remote)
    assert any(isinstance(e, runner.RunStarted) and e.resumed for e in events)
    assert not any(isinstance(e, runner.ReplyStored) for e in events)  # nothing sent twice

    local_backend = LlamaCppBackend(threads=1, slots=1)
    try:
        with Store(tmp_path / "local.sqlite") as store:
            local_record = runner.run(spec, local_backend, store)
            local = store.results(local_record.id)
    finally:
        local_backend.close()

    assert record.status == "complete" and len(remote) == 3
    assert local_record.run_key == record.run_key
    assert [(r.case_id, r.cache_key, r.reply and r.reply.content) for r in remote] == [
        (r.case_id, r.cache_key, r.reply and r.reply.content) for r in local
    ]
    # the task asked for a GPU: only the worker has one, so the worker served it and is named on the replies
    assert {r.host for r in remote} == {model_row.host} and model_row.host.endswith(worker[:8])
    assert model_row.load_s is not None and model_row.memory is not None


@pytest.mark.train
def test_a_ray_probe_stores_what_a_local_probe_stores(cluster: tuple[str, str], tmp_path: Path) -> None:
    """`benchsel probe --ray`: the pilot LoRA trains on the node with the GPU it asks for, its adapter
    comes back, the post-probe benchmark's replies are stored here, and the stored probe has the shape
    and the zero-shot figures of a local probe of the same run; select then ranks it."""
    address, worker = cluster
    tiny = build_tiny_gguf(tmp_path / "tiny")
    local_db, ray_db = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    run = api.run([str(tiny)], evalset="extraction-v1", backend="llamacpp", limit=4, num_predict=8,
                  threads=1, db=local_db)  # fmt: skip
    shutil.copyfile(local_db, ray_db)  # the one run, in two stores: each probed once
    pilot = ["--method", "lora", "--steps", "2", "--batch", "2", "--grad-accum", "1", "--threads", "1"]

    def probe(db: Path, *more: str) -> dict:
        out = tmp_path / f"probes-{db.stem}"
        result = invoke("probe", run.run.id, *pilot, "--db", str(db), "--out", str(out), *more)
        assert result.exit_code == 0, result.output
        with Store(db) as store:
            stored = store.latest_probe(run.run.id, "lora")
        assert stored is not None
        return {"output": result.output, "settings": stored.settings, "split": stored.split,
                **stored.models[str(tiny)]}  # fmt: skip

    local = probe(local_db)
    remote = probe(ray_db, "--ray", address, "--ray-gpus", "1")

    assert f"training on Ray node {remote['training']['host']}" in remote["output"]
    assert remote["training"]["host"].endswith(worker[:8])  # the node with the GPU the task asked for
    assert local["training"]["host"] is None
    assert set(remote) == set(local) and set(remote["training"]) == set(local["training"])
    for key in ("settings", "split", "status", "cases", "zero_shot", "zero_shot_valid_json"):
        assert remote[key] == local[key], key
    assert remote["training"]["steps"] == local["training"]["steps"] == 2
    assert len(remote["training"]["train_losses"]) == 2 and remote["training"]["peak_memory_bytes"] > 0
    adapter = Path(remote["training"]["adapter"])  # brought back from the node, where a local probe puts it
    assert adapter == (tmp_path / "probes-ray" / "tiny-llama-2steps" / "adapter.gguf").resolve()
    assert adapter.stat().st_size > 0

    with Store(local_db) as store:
        local_before = store.run(local["before_run_id"])
    with Store(ray_db) as store:
        assert store.run(remote["before_run_id"]).run_key == local_before.run_key  # a re-run resumes
        after = store.results(remote["after_run_id"])
        (after_model,) = store.models(remote["after_run_id"])
    assert len(after) == 2 and {r.host for r in after} == {after_model.host}
    assert after_model.host.endswith(worker[:8]) and after_model.name.endswith("+tiny-llama-2steps")

    selected = invoke(
        "select", run.run.id, "--vram", "8GiB", "--db", str(ray_db), "--out", str(tmp_path / "sel")
    )
    assert selected.exit_code == 0, selected.output
    assert "Measured trainability" in selected.output
    assert f"Measured: {tiny} - " in selected.output
