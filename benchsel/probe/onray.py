"""`benchsel probe --ray`: each pilot LoRA is trained by a Ray task on a node with the resources it
asks for, and its adapter comes back here as bytes; the benchmarks around it are Ray runs
(benchsel.raymode) whose replies this process stores, so the probe is stored as a local one is."""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel.errors import BenchselError, UsageError
from benchsel.probe.pilot import Pilot, train_pilot
from benchsel.probe.plan import ProbePlan, StageFn, pilot_dir, pilot_settings

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet
    from benchsel.raymode import Emit, NodeResources
    from benchsel.records import ModelSnapshot
    from benchsel.summary import ModelSummary, RunSummary

# The engines a node starts itself; a run served by an OpenAI-compatible server has no node engine.
NODE_ENGINES = ("auto", "llamacpp", "ollama")


@contextlib.contextmanager
def ray_session(plan: ProbePlan) -> Iterator[None]:
    """Connected to the plan's cluster while the probe runs."""
    from benchsel.raymode import session

    with session(plan.ray or "auto"):
        yield


def check_cluster(plan: ProbePlan, summary: RunSummary, candidates: Sequence[ModelSummary]) -> None:
    """Before any work: refuse a few-shot probe of a run that an OpenAI-compatible server answered (a
    node has no such engine of its own), and tasks that no node of the cluster has the resources for."""
    from benchsel.raymode import NodeResources, check_fits

    if plan.method == "fewshot" and summary.run.backend not in NODE_ENGINES:
        raise UsageError(
            f"run {summary.run.id} was served by {summary.run.backend}: with --ray each node serves with "
            "its own engine (llamacpp or ollama) - probe it without --ray"
        )
    check_fits(NodeResources(num_gpus=plan.ray_gpus), "the probe's benchmarks")
    if plan.method == "lora":
        for model in candidates:
            check_fits(pilot_resources(plan, model.snapshot), f"the pilot LoRA of {model.name}")


def ray_backend(plan: ProbePlan, kind: str) -> dict[str, Any]:
    """benchsel.api.run's keywords for a Ray run on the plan's cluster with ``kind`` on each node."""
    return {"backend": kind, "threads": plan.threads, "ray": plan.ray, "ray_gpus": plan.ray_gpus}


def pilot_resources(plan: ProbePlan, snapshot: ModelSnapshot | None) -> NodeResources:
    """One CPU, the plan's GPUs, and as memory ``plan.ray_memory_bytes`` or the training estimate
    (bf16 on a GPU, fp32 on a CPU), when the model's shape is known."""
    from benchsel.raymode import NodeResources

    memory = plan.ray_memory_bytes
    if memory is None and snapshot is not None:
        memory = training_estimate_bytes(plan, snapshot)
    return NodeResources(num_cpus=1.0, num_gpus=plan.ray_gpus, memory_bytes=memory or None)


def training_estimate_bytes(plan: ProbePlan, snapshot: ModelSnapshot) -> int | None:
    from benchsel.hardware import training_memory_from_model_info

    settings = pilot_settings(plan)
    try:
        estimate = training_memory_from_model_info(
            snapshot.model_info,
            parameter_count=snapshot.parameter_count,
            rank=settings.r,
            target_modules=settings.target_modules,
            seq_len=settings.max_seq_len,
            batch=settings.per_device_batch_size,
            precision="bf16" if plan.ray_gpus else "fp32",
        )
    except (UsageError, KeyError, TypeError, ValueError):  # a shape the GGUF does not say
        return None
    return estimate.total_bytes


@dataclass(frozen=True)
class _PilotJob:
    plan: ProbePlan
    name: str
    evalset: EvalSet


def _pilot_on_node(job: _PilotJob, emit: Emit) -> None:
    """On the node: the same trainer call as a local probe, in a scratch folder; the adapter's bytes
    and the training figures go back."""
    from benchsel.raymode import node_name

    scratch = Path(tempfile.mkdtemp(prefix="benchsel-pilot-"))
    try:
        emit(("host", node_name()))
        plan = replace(job.plan, out_dir=scratch, db=None, cache_dir=None)
        pilot = train_pilot(plan, job.name, job.evalset, lambda text: emit(("stage", text)))
        emit(("pilot", pilot.training, pilot.adapter.read_bytes()))
    except BenchselError as exc:
        emit(("error", exc.exit_code, str(exc)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train_on_ray(
    plan: ProbePlan, name: str, cases: EvalSet, stage: StageFn, snapshot: ModelSnapshot | None = None
) -> Pilot:
    """Train ``name``'s pilot LoRA as a Ray task; the adapter is written where a local probe writes
    it (``pilot_dir``), and the figures name the node that trained it."""
    import ray

    from benchsel.evalset import load_evalset
    from benchsel.raymode import check_fits, stream_on_node

    resources = pilot_resources(plan, snapshot)
    check_fits(resources, f"the pilot LoRA of {name}")
    # the whole eval set travels: training data is leak-checked against both splits
    job = _PilotJob(plan, name, load_evalset(cases.path))
    host, received = "a Ray node", None
    try:
        for item in stream_on_node(functools.partial(_pilot_on_node, job), resources):
            if item[0] == "host":
                host = item[1]
                stage(f"  training on Ray node {host}")
            elif item[0] == "stage":
                stage(item[1])
            elif item[0] == "error":
                raise (UsageError if item[1] == 2 else BenchselError)(f"on {host}: {item[2]}")
            else:
                received = item[1], item[2]
    except ray.exceptions.RayError as exc:
        last = str(exc).strip().splitlines()[-1][:300]
        raise BenchselError(
            f"the pilot LoRA of {name} failed on {host} ({last}) - install benchsel with its training "
            "extra on every node (pip install 'benchsel[train,embedded,ray]') and check `ray status`"
        ) from None
    if received is None:
        raise BenchselError(f"the Ray task training {name} ended without an adapter - see `ray logs`")
    training, adapter_bytes = received
    adapter = pilot_dir(plan, name).expanduser().resolve() / "adapter.gguf"
    adapter.parent.mkdir(parents=True, exist_ok=True)
    adapter.write_bytes(adapter_bytes)
    stage(f"  adapter from {host} saved as {adapter}")
    training = training.model_copy(update={"adapter": str(adapter), "host": host})
    return Pilot(name, adapter, training)
