"""`benchsel probe --ray` without a cluster: the one-line errors (no ray extra, an address nothing
answers at, a run no node can serve, a task no node can take), the resources a pilot LoRA asks for,
the adapter carried to a node as bytes, and what the coordinator does with a pilot's stream. The real
cluster test is tests/test_raymode.py::test_a_ray_probe_stores_what_a_local_probe_stores."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from model_infos import GEMMA3_4B

from benchsel import raymode
from benchsel.cli.main import cli
from benchsel.errors import BenchselError, UsageError
from benchsel.evalset import load_evalset
from benchsel.probe import TrainingFigures, onray
from benchsel.probe.plan import ProbePlan, pilot_dir
from benchsel.raymode import EngineChoice, NodeResources
from benchsel.records import ModelSnapshot


def _probe(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["probe", "RUN", "--method", "lora", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_ray_without_the_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, output = _probe("--ray")
    assert code == 2
    assert output.strip().splitlines() == [
        "Error: Ray mode needs the 'ray' extra - run `pip install 'benchsel[ray]'`"
    ]


def test_an_address_nothing_answers_at_is_one_line_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        code, output = _probe("--ray", address)
    assert code == 2
    [line] = output.strip().splitlines()
    assert line.startswith(f"Error: cannot reach a Ray cluster at {address} (")
    assert "`ray start --head`" in line


def _cluster(monkeypatch: pytest.MonkeyPatch, *nodes: dict[str, Any]) -> None:
    fake = SimpleNamespace(nodes=lambda: list(nodes))
    monkeypatch.setattr(raymode, "_ray", lambda: fake)


def test_before_any_work_a_probe_the_cluster_cannot_run_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _cluster(monkeypatch, {"Alive": True, "Resources": {"CPU": 2.0, "memory": 8 * 1024**3}})
    summary: Any = SimpleNamespace(run=SimpleNamespace(id="r1", backend="openai"))
    with pytest.raises(UsageError, match="run r1 was served by openai: with --ray each node serves"):
        onray.check_cluster(ProbePlan("r1", "fewshot", ray="auto"), summary, [])
    big = SimpleNamespace(name="gemma3:4b", snapshot=_snapshot())  # fp32 training wants more than 8 GiB
    with pytest.raises(UsageError, match=r"has 1 CPU, 0 GPU, .* of memory for the pilot LoRA of gemma3:4b"):
        onray.check_cluster(ProbePlan("r1", "lora", ray="auto"), summary, [big])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="has 1 CPU, 1 GPU for the probe's benchmarks"):
        onray.check_cluster(ProbePlan("r1", "lora", ray="auto", ray_gpus=1), summary, [])
    small = ProbePlan("r1", "lora", ray="auto", ray_memory_bytes=4 * 1024**3)
    onray.check_cluster(small, summary, [big])  # type: ignore[list-item]


def _snapshot(**info: Any) -> ModelSnapshot:
    return ModelSnapshot(
        "gemma3:4b", "llamacpp", "sha256:x", parameter_count=4_300_000_000, model_info={**GEMMA3_4B, **info}
    )


def test_a_pilot_asks_for_its_gpus_and_the_memory_its_training_needs() -> None:
    snapshot = _snapshot()
    on_cpu = onray.pilot_resources(ProbePlan("r", "lora", ray="auto"), snapshot)
    on_gpu = onray.pilot_resources(ProbePlan("r", "lora", ray="auto", ray_gpus=1), snapshot)
    assert (on_cpu.num_cpus, on_cpu.num_gpus, on_gpu.num_gpus) == (1.0, 0.0, 1.0)
    assert on_cpu.memory_bytes is not None and on_gpu.memory_bytes is not None
    assert on_cpu.memory_bytes > on_gpu.memory_bytes > 4_300_000_000  # fp32 on a CPU, bf16 on a GPU
    given = onray.pilot_resources(ProbePlan("r", "lora", ray_memory_bytes=3 * 1024**3), snapshot)
    assert given.memory_bytes == 3 * 1024**3
    assert onray.pilot_resources(ProbePlan("r", "lora", ray_memory_bytes=0), snapshot).memory_bytes is None
    shapeless = ModelSnapshot("tiny.gguf", "llamacpp", "sha256:y")  # nothing to estimate from: ask none
    assert onray.pilot_resources(ProbePlan("r", "lora"), shapeless).memory_bytes is None


def test_a_task_no_node_can_take_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    head = {"Alive": True, "Resources": {"CPU": 4.0, "memory": 8 * 1024**3}}
    dead_gpu = {"Alive": False, "Resources": {"CPU": 4.0, "GPU": 1.0, "memory": 64 * 1024**3}}
    _cluster(monkeypatch, head, dead_gpu)
    raymode.check_fits(NodeResources(num_gpus=0, memory_bytes=4 * 1024**3), "the pilot LoRA of m")
    with pytest.raises(UsageError) as caught:
        raymode.check_fits(NodeResources(num_gpus=1, memory_bytes=4 * 1024**3), "the pilot LoRA of m")
    assert str(caught.value) == (
        "no node of the Ray cluster has 1 CPU, 1 GPU, 4.0 GiB of memory for the pilot LoRA of m - add such "
        "a node (`ray start --address HEAD:6379 --num-gpus N --memory BYTES`) or ask for less"
    )


def test_an_adapter_travels_as_bytes_and_lands_once_per_node(tmp_path: Path) -> None:
    adapter = tmp_path / "smollm2-2steps" / "adapter.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF adapter bytes")
    engine = EngineChoice.shipping("llamacpp", 1, adapter)
    assert engine.adapter == b"GGUF adapter bytes" and engine.lora == str(adapter)
    backend = engine.backend(slots=1)  # on the node: a copy named by its hash, not the coordinator's path
    node_file = backend.lora  # type: ignore[attr-defined]
    assert node_file != adapter and node_file.read_bytes() == b"GGUF adapter bytes"
    assert raymode.node_copy(b"GGUF adapter bytes", ".gguf") == node_file
    assert EngineChoice.shipping("llamacpp", 1, None) == EngineChoice("llamacpp", 1)


def _training(adapter: str) -> TrainingFigures:
    return TrainingFigures(
        steps=2, train_losses=[2.0, 1.5], eval_losses=[1.8], train_seconds=3.0, tokens_per_s=100.0,
        peak_memory_bytes=10**9, peak_memory_kind="process_max_rss", device="cpu", examples=40,
        adapter=adapter,
    )  # fmt: skip


def test_the_coordinator_keeps_the_adapter_where_a_local_probe_would(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stream = [
        ("host", "10.0.0.7/abcdef12"),
        ("stage", "  Training tiny+x"),
        ("pilot", _training("/tmp/benchsel-pilot-1/x/adapter.gguf"), b"adapter"),
    ]
    sent: list[NodeResources] = []
    monkeypatch.setattr(raymode, "check_fits", lambda resources, what: sent.append(resources))
    monkeypatch.setattr(raymode, "stream_on_node", lambda fn, resources: iter(stream))
    plan = ProbePlan("run1", "lora", steps=2, out_dir=tmp_path / "probes", ray="auto", ray_gpus=1)
    stages: list[str] = []
    pilot = onray.train_on_ray(plan, "smollm2:135m", load_evalset("extraction-v1"), stages.append)
    adapter = pilot_dir(plan, "smollm2:135m").resolve() / "adapter.gguf"
    assert pilot.adapter == adapter and adapter.read_bytes() == b"adapter"
    assert pilot.engine_model == "smollm2:135m"  # the node serves the base by the run's name
    assert pilot.training.adapter == str(adapter) and pilot.training.host == "10.0.0.7/abcdef12"
    assert pilot.training.train_losses == [2.0, 1.5]
    assert stages[:2] == ["  training on Ray node 10.0.0.7/abcdef12", "  Training tiny+x"]
    assert sent == [NodeResources(num_cpus=1.0, num_gpus=1.0)]


@pytest.mark.parametrize(("code", "error"), [(2, UsageError), (1, BenchselError)])
def test_a_node_error_is_raised_here_with_the_node_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int, error: type[BenchselError]
) -> None:
    stream = [("host", "10.0.0.7/abcdef12"), ("error", code, "no trainable weights for x")]
    monkeypatch.setattr(raymode, "check_fits", lambda resources, what: None)
    monkeypatch.setattr(raymode, "stream_on_node", lambda fn, resources: iter(stream))
    plan = ProbePlan("run1", "lora", out_dir=tmp_path, ray="auto")
    with pytest.raises(error, match=r"^on 10.0.0.7/abcdef12: no trainable weights for x$") as caught:
        onray.train_on_ray(plan, "x", load_evalset("extraction-v1"), lambda text: None)
    assert type(caught.value) is error
