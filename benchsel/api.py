"""benchsel as Python calls: what each command does, without a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchsel.backends.base import FormatMode, RequestOptions, ThinkMode
from benchsel.errors import UsageError
from benchsel.evalset import EvalSet, load_evalset
from benchsel.runner import EventCallback, RunSpec
from benchsel.runner import run as run_spec
from benchsel.store import Store
from benchsel.summary import RunSummary, summarize_run

DEFAULT_EVALSET = "extraction-v1"


def parse_models(models: str | Sequence[str]) -> tuple[str, ...]:
    names = models.split(",") if isinstance(models, str) else list(models)
    cleaned = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    if not cleaned:
        raise UsageError("no models given - pass --models, e.g. --models gemma3:4b,gemma4:e2b")
    return cleaned


def run(
    models: str | Sequence[str],
    *,
    evalset: str | Path | EvalSet = DEFAULT_EVALSET,
    backend: str = "auto",
    host: str | None = None,
    base_url: str | None = None,
    format: FormatMode = "none",
    think: ThinkMode = "auto",
    repeats: int = 1,
    concurrency: int = 1,
    timeout_s: float = 300.0,
    retries: int = 3,
    num_ctx: int | None = None,
    num_predict: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    limit: int | None = None,
    fresh: bool = False,
    pull: bool = False,
    threads: int | None = None,
    lora: str | Path | None = None,
    lora_name: str | None = None,
    db: str | Path | None = None,
    on_event: EventCallback | None = None,
    on_pull: Callable[[str], Callable[[Any], None]] | None = None,
) -> RunSummary:
    """Benchmark ``models`` on an eval set and return the scored run (stored in the run store).
    With ``lora`` (a GGUF adapter, embedded engine only) each model is its base served with the adapter,
    named ``BASE+NAME`` (``lora_name``, default the adapter's name) so runs tell it from its base."""
    from benchsel.backends.select import make_backend

    loaded = evalset if isinstance(evalset, EvalSet) else load_evalset(evalset)
    defaults = loaded.manifest.defaults
    if repeats < 1 or concurrency < 1:
        raise UsageError("--repeats and -j must be at least 1")
    options = RequestOptions(
        temperature=defaults.temperature if temperature is None else temperature,
        seed=defaults.seed if seed is None else seed,
        num_ctx=num_ctx or defaults.num_ctx,
        num_predict=num_predict or defaults.num_predict,
        format=format,
        think=think,
        timeout_s=timeout_s,
    )
    names = parse_models(models)
    if lora is not None:
        backend, lora, names = _with_lora(backend, Path(lora), lora_name, names)
    spec = RunSpec(
        models=names,
        evalset=loaded,
        options=options,
        repeats=repeats,
        concurrency=concurrency,
        retries=retries,
        fresh=fresh,
        limit=limit,
    )
    chosen = make_backend(
        backend,
        host=host,
        base_url=base_url,
        threads=threads,
        slots=concurrency,
        lora=Path(lora) if lora is not None else None,
    )
    with Store(db) as store, contextlib.closing(chosen):
        if pull:
            _pull_missing(chosen, spec.models, on_pull)
        record = run_spec(spec, chosen, store, on_event=on_event, host=_host_of(chosen), hardware=_hardware())
        return summarize_run(store, record.id, evalset=loaded)


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
