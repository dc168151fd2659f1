"""benchsel as Python calls: what each command does, without a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchsel.bounds import check_run_options
from benchsel.defaults import EVALSET as DEFAULT_EVALSET
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.records import FormatMode, RequestOptions, ThinkMode
from benchsel.runner import EventCallback, RunSpec
from benchsel.runner import run as run_spec
from benchsel.store import Store
from benchsel.summary import RunSummary, summarize_run


def parse_models(models: str | Sequence[str]) -> tuple[str, ...]:
    names = models.split(",") if isinstance(models, str) else list(models)
    cleaned = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    if not cleaned:
        raise UsageError("no models given - pass --models, e.g. --models gemma3:4b,gemma4:e2b")
    return cleaned


@dataclass(frozen=True)
class RunOptions:
    """Everything a run can be told besides its models, grouped in one record: the eval set and where
    the replies are stored; where the models are served; what every request asks; how the run goes."""

    # what is asked, and where the replies go
    evalset: str | Path | EvalSet = DEFAULT_EVALSET
    db: str | Path | None = None
    # where the models are served
    backend: str = "auto"
    host: str | Sequence[str] | None = None
    hosts_file: str | Path | None = None
    ray: str | None = None
    ray_gpus: float = 0.0
    base_url: str | None = None
    threads: int | None = None
    lora: str | Path | None = None
    lora_name: str | None = None
    pull: bool = False
    # every request (None: the eval set's default)
    format: FormatMode = "none"
    think: ThinkMode = "auto"
    num_ctx: int | None = None
    num_predict: int | None = None
    temperature: float | None = None
    seed: int | None = None
    timeout_s: float = 300.0
    prompt_cache: bool = True
    # the run
    repeats: int = 1
    concurrency: int | str = 1
    retries: int = 3
    limit: int | None = None
    fresh: bool = False


PullCallback = Callable[[str], Callable[[Any], None]]


def run(
    models: str | Sequence[str],
    options: RunOptions | None = None,
    *,
    on_event: EventCallback | None = None,
    on_pull: PullCallback | None = None,
    **fields: Any,
) -> RunSummary:
    """Benchmark ``models`` on an eval set and return the scored run (stored in the run store). The
    options are a :class:`RunOptions` and/or its fields as keywords (``backend="llamacpp", limit=5``),
    the keywords winning.

    ``concurrency`` is a number or 'auto' (benchsel.slots); ``prompt_cache=False`` prefills every
    case's whole prompt (benchsel.prefix_cache).

    Numeric options are checked first (benchsel.bounds): a value out of range is a UsageError naming
    the CLI option. A model none of whose replies could be scored is in ``summary.failed_models``
    with no score; ``summary.nothing_scored`` says the whole run produced nothing to score.

    Several ``host`` values (or a ``hosts_file``) spread the models over those servers; ``ray`` (an
    address, 'auto' or 'local') runs each model as a task on a Ray cluster.

    With ``lora`` (a GGUF adapter, embedded engine only) each model is its base served with the adapter,
    named ``BASE+NAME`` (``lora_name``, default the adapter's name) so runs tell it from its base."""
    return run_with(models, replace(options or RunOptions(), **fields), on_event=on_event, on_pull=on_pull)


def run_with(
    models: str | Sequence[str],
    o: RunOptions,
    *,
    on_event: EventCallback | None = None,
    on_pull: PullCallback | None = None,
) -> RunSummary:
    """:func:`run` with its options as one record."""
    from benchsel.backends.factory import make_backend
    from benchsel.prefix_cache import effective_prompt_cache
    from benchsel.slots import AUTO, auto_backend_concurrency, auto_engine_slots, parse_concurrency

    backend, lora = o.backend, o.lora
    check_run_options(
        timeout_s=o.timeout_s,
        temperature=o.temperature,
        limit=o.limit,
        num_predict=o.num_predict,
        num_ctx=o.num_ctx,
        threads=o.threads,
        concurrency=None if isinstance(o.concurrency, str) else o.concurrency,
        repeats=o.repeats,
        retries=o.retries,
    )
    loaded = o.evalset if isinstance(o.evalset, EvalSet) else load_evalset(o.evalset)
    defaults = loaded.manifest.defaults
    jobs = parse_concurrency(o.concurrency)
    model_names = parse_models(models)
    requests = len(loaded.cases[: o.limit] if o.limit else loaded.cases) * o.repeats
    engine: dict[str, Any] = {}
    if jobs == AUTO:
        jobs, engine["concurrency"] = auto_engine_slots(requests)
    options = RequestOptions(
        temperature=defaults.temperature if o.temperature is None else o.temperature,
        seed=defaults.seed if o.seed is None else o.seed,
        num_ctx=defaults.num_ctx if o.num_ctx is None else o.num_ctx,
        num_predict=defaults.num_predict if o.num_predict is None else o.num_predict,
        format=o.format,
        think=o.think,
        timeout_s=o.timeout_s,
    )
    if lora is not None:
        backend, lora, model_names = _with_lora(backend, Path(lora), o.lora_name, model_names)
    hosts = [o.host] if isinstance(o.host, str) else list(o.host or ())
    named = any("=" in text.split("://")[0] for text in hosts)  # NAME=URL: a host of a multi-host run
    if o.ray is not None or o.hosts_file is not None or len(hosts) > 1 or named:
        if o.pull:
            raise UsageError("--pull works with one host - run `ollama pull MODEL` on each host first")
        spread = RunSpec(
            models=model_names,
            evalset=loaded,
            options=replace(options, prompt_cache=o.prompt_cache),
            repeats=o.repeats,
            concurrency=int(jobs),
            retries=o.retries,
            fresh=o.fresh,
            limit=o.limit,
        )
        with Store(o.db) as store:
            record = _run_spread(
                spread, store, hosts, o.hosts_file, o.ray, o.ray_gpus, backend, o.threads, lora, on_event
            )
            return summarize_run(store, record.id, evalset=loaded)
    chosen = make_backend(
        backend,
        host=hosts[0] if hosts else None,
        base_url=o.base_url,
        threads=o.threads,
        slots=int(jobs),
        lora=Path(lora) if lora is not None else None,
    )
    with Store(o.db) as store, contextlib.closing(chosen):
        if o.pull:
            _pull_missing(chosen, model_names, on_pull)
        if "concurrency" in engine and chosen.name != "llamacpp":
            jobs, engine["concurrency"] = auto_backend_concurrency(chosen, model_names[0], requests)
        if chosen.name == "llamacpp":
            engine["threads"] = getattr(chosen, "engine_threads", None)
            engine["threads_reason"] = getattr(chosen, "threads_reason", "")
        spec = RunSpec(
            models=model_names,
            evalset=loaded,
            options=replace(options, prompt_cache=effective_prompt_cache(chosen, o.prompt_cache)),
            repeats=o.repeats,
            concurrency=int(jobs),
            retries=o.retries,
            fresh=o.fresh,
            limit=o.limit,
        )
        hardware = {**_hardware(), **({"engine": engine} if engine else {})}
        record = run_spec(spec, chosen, store, on_event=on_event, host=_host_of(chosen), hardware=hardware)
        return summarize_run(store, record.id, evalset=loaded)


def _run_spread(
    spec: RunSpec,
    store: Store,
    hosts: list[str],
    hosts_file: str | Path | None,
    ray: str | None,
    ray_gpus: float,
    backend: str,
    threads: int | None,
    lora: str | Path | None,
    on_event: EventCallback | None,
) -> Any:
    """A run over several hosts, or on a Ray cluster."""
    if ray is not None:
        from benchsel.raymode import EngineChoice, NodeResources, run_on_ray

        engine = EngineChoice.shipping(backend, threads, lora)  # the adapter travels with each task
        return run_on_ray(
            spec,
            store,
            address=ray,
            engine=engine,
            resources=NodeResources(num_gpus=ray_gpus),
            on_event=on_event,
            hardware=_hardware(),
        )
    from benchsel.hosts import load_hosts_file, parse_host
    from benchsel.multihost import run_on_hosts

    specs = [parse_host(text, backend) for text in hosts]
    specs += load_hosts_file(hosts_file) if hosts_file is not None else []
    return run_on_hosts(spec, specs, store, on_event=on_event, hardware=_hardware())


def _with_lora(
    backend: str, lora: Path, lora_name: str | None, models: tuple[str, ...]
) -> tuple[str, Path, tuple[str, ...]]:
    """The embedded engine, the adapter's absolute path (llama-server runs in another working
    directory), and the models named ``BASE+NAME``."""
    from benchsel.backends.llamacpp import lora_model_name

    if backend not in ("auto", "llamacpp"):
        raise UsageError(f"--lora needs the embedded engine (--backend llamacpp), not --backend {backend}")
    if not lora.is_file():
        raise UsageError(f"--lora {lora}: no such file - give the adapter.gguf that `benchsel train` wrote")
    lora = lora.expanduser().resolve()
    return "llamacpp", lora, tuple(lora_model_name(model, lora, lora_name) for model in models)


def _pull_missing(
    backend: Any, models: Sequence[str], on_pull: Callable[[str], Callable[[Any], None]] | None
) -> None:
    """Pull the models Ollama does not have; ``on_pull(model)`` gives a progress callback."""
    from benchsel.errors import ModelNotFound

    if not hasattr(backend, "pull"):
        raise UsageError(f"--pull works with the ollama backend, not {backend.name}")
    for model in models:
        try:
            backend.describe(model)
        except ModelNotFound:
            backend.pull(model, progress=on_pull(model) if on_pull else None)


def _host_of(backend: Any) -> str:
    for attribute in ("host", "base_url"):
        value = getattr(backend, attribute, None)
        if isinstance(value, str):
            return value
    return "local"


def _hardware() -> dict[str, Any]:
    import os
    import platform

    info: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(Exception):
        from benchsel.hardware import detect_gpus

        info["gpus"] = [str(gpu) for gpu in detect_gpus()]
    return info


def load_run(run_id: str, *, db: str | Path | None = None, evalset: str | Path | None = None) -> RunSummary:
    """A stored run, scored."""
    with Store(db) as store:
        return summarize_run(store, run_id, evalset=evalset)
