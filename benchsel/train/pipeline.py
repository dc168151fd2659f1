"""The loop back, once through: data -> LoRA -> GGUF adapter + Modelfile -> Ollama -> the eval set again.

:func:`train` is what ``benchsel train`` calls; every step is also a function of its own module.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel.errors import MissingExtra, UsageError
from benchsel.train.lora import TrainSettings

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet
    from benchsel.report.compare import Comparison
    from benchsel.selection import SelectionRecord
    from benchsel.summary import RunSummary
    from benchsel.train.base import ResolvedBase
    from benchsel.train.data import DataReport, Example, Format, PreparedData
    from benchsel.train.lora import ProgressFn, TrainResult
    from benchsel.train.register import BaseServing

DEFAULT_EVALSET = "extraction-v1"
DEFAULT_SYNTHETIC_N = 600
TRAINING_MODULES = ("torch", "transformers", "peft", "trl")
RUN_OPTION_KEYS = ("temperature", "seed", "num_ctx", "num_predict", "format", "think")

StageFn = Callable[[str], None]


@dataclass(frozen=True)
class TrainPlan:
    """Everything ``benchsel train`` was asked to do. ``base`` or ``from_selection`` names the base."""

    base: str | None = None
    from_selection: Path | None = None
    data: Path | None = None
    fmt: Format = "auto"
    evalset: str | Path | None = None
    drop_leaks: bool = False
    settings: TrainSettings = field(default_factory=lambda: TrainSettings.model_validate({}))
    out_dir: Path | None = None
    register: str | None = None
    merged: bool = False
    evaluate: bool = False
    synthetic_n: int = DEFAULT_SYNTHETIC_N
    seed: int = 0
    val_fraction: float = 0.1
    host: str | None = None
    db: Path | None = None
    eval_limit: int | None = None
    eval_num_predict: int | None = None
    threads: int | None = None
    cache_dir: Path | None = None


@dataclass(frozen=True)
class Evaluation:
    """The base's run, the fine-tune's run, and their comparison (B = fine-tune minus A = base)."""

    before: RunSummary
    after: RunSummary
    comparison: Comparison
    written: tuple[Path, ...]
    engine: str


@dataclass(frozen=True)
class TrainOutcome:
    out_dir: Path
    base_name: str
    base: ResolvedBase
    data_report: DataReport
    training: TrainResult
    adapter_gguf: Path
    modelfile: Path
    registered: str | None = None
    merged_dir: Path | None = None
    evaluation: Evaluation | None = None


def require_training_extra() -> None:
    """Refuse early, before any work, when torch / transformers / peft / trl are missing."""
    missing = [name for name in TRAINING_MODULES if not _module_available(name)]
    if missing:
        raise MissingExtra(f"benchsel train ({', '.join(missing)} not installed)", "train")


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def default_out_dir(root: Path = Path("reports")) -> Path:
    return root / f"train-{datetime.now():%Y%m%d-%H%M%S}"


# ---- the pipeline -------------------------------------------------------------------------------


def train(
    plan: TrainPlan, *, on_stage: StageFn | None = None, on_progress: ProgressFn | None = None
) -> TrainOutcome:
    """Train a LoRA on the plan's base, export it, register it, and evaluate it when asked."""
    from benchsel.evalset import load_evalset
    from benchsel.selection import evalset_for_training
    from benchsel.train.base import resolve_base
    from benchsel.train.export import export_gguf_adapter
    from benchsel.train.lora import merge_and_save, train_lora

    stage = on_stage or (lambda text: None)
    require_training_extra()
    selection = _selection(plan.from_selection)
    base_name = plan.base or str(selection.winners.train if selection else "")
    if plan.evalset is None and selection is not None:
        evalset = evalset_for_training(selection)  # by stored path, checked against its content hash
    else:
        evalset = load_evalset(plan.evalset or DEFAULT_EVALSET)
    out_dir = Path(plan.out_dir or default_out_dir())
    out_dir.mkdir(parents=True, exist_ok=True)

    data = build_data(plan, evalset, out_dir, stage)
    stage(f"Resolving base {base_name}")
    base = resolve_base(base_name, cache_dir=plan.cache_dir)
    train_rows, val_rows = render_rows(base, data.train), render_rows(base, data.validation)
    stage(f"Training LoRA r={plan.settings.r} alpha={plan.settings.alpha} on {len(train_rows)} examples")
    result = train_lora(base, train_rows, val_rows, plan.settings, out_dir, on_progress)
    adapter = export_gguf_adapter(result.adapter_dir, base, out_dir / "adapter.gguf")
    stage(f"Exported {adapter}")

    tag = serving_tag(base, selection)
    serving = _serving(tag, plan.host)
    modelfile = write_modelfile_beside(adapter, tag or str(base.gguf_path or base.hf_dir), serving)
    registered = _register(plan, tag, adapter, serving, stage)
    merged = merge_and_save(result.adapter_dir, out_dir / "merged") if plan.merged else None
    outcome = TrainOutcome(
        out_dir, base_name, base, data.report, result, adapter, modelfile, registered, merged
    )
    if not plan.evaluate:
        return outcome
    evaluation = evaluate(plan, outcome, evalset, selection, stage)
    return dataclasses.replace(outcome, evaluation=evaluation)


def _selection(path: Path | None) -> SelectionRecord | None:
    """selection.json, validated before any work (a hand-edited file is one clear error)."""
    if path is None:
        return None
    from benchsel.selection import load_selection

    return load_selection(path)


# ---- data ---------------------------------------------------------------------------------------


def build_data(plan: TrainPlan, evalset: EvalSet, out_dir: Path, stage: StageFn) -> PreparedData:
    """Import (or generate) the examples, check them against the eval set, split, and save both halves."""
    from benchsel.train.data import load_examples, prepare, write_jsonl

    if plan.data is not None:
        stage(f"Reading training data from {plan.data}")
        examples = load_examples(plan.data, plan.fmt, evalset.prompt)
    else:
        stage(f"Generating {plan.synthetic_n} synthetic examples (seed {plan.seed})")
        examples = synthetic_examples(plan.synthetic_n, plan.seed, evalset)
    data = prepare(
        examples,
        schema=evalset.schema,
        evalset=evalset,
        drop_leaks=plan.drop_leaks,
        val_fraction=plan.val_fraction,
        seed=plan.seed,
    )
    write_jsonl(data.train, out_dir / "data" / "train.jsonl")
    write_jsonl(data.validation, out_dir / "data" / "validation.jsonl")
    for line in data.report.lines():
        stage(line)
    return data


def synthetic_examples(n: int, seed: int, evalset: EvalSet) -> list[Example]:
    from benchsel.labels import require_synthetic_fit
    from benchsel.train.synth import generate

    require_synthetic_fit(evalset)  # an imported set's closed labels are not synthetic data's
    if n < 2:
        raise UsageError(f"--n {n}: generate at least 2 examples (one goes to validation)")
    return generate(n, seed, evalset.prompt)


def chat_template_fallback(architecture: str) -> str | None:
    """Gemma's turn format for Gemma-family bases whose tokenizer has no template (base checkpoints)."""
    from benchsel.train.data import GEMMA_TURN_TEMPLATE

    return GEMMA_TURN_TEMPLATE if "gemma" in architecture.lower() else None


def render_rows(base: ResolvedBase, examples: tuple[Example, ...]) -> list[dict[str, list[int]]]:
    """Token ids and labels rendered with the base's own chat template (loss on the answer only)."""
    from transformers import AutoTokenizer

    from benchsel.train.data import render_for_training

    tokenizer = AutoTokenizer.from_pretrained(base.hf_dir)
    fallback = chat_template_fallback(base.architecture)
    return [render_for_training(e, tokenizer, fallback_template=fallback) for e in examples]


# ---- Modelfile and registration ----------------------------------------------------------------


def serving_tag(base: ResolvedBase, selection: SelectionRecord | None) -> str | None:
    """The Ollama tag the adapter goes on: the base's own, or the selection winner served by Ollama."""
    if base.ollama_tag:
        return base.ollama_tag
    train_base = selection.train_base if selection is not None else None
    if train_base is not None and train_base.backend == "ollama":
        return train_base.name
    return None


def _ollama(host: str | None) -> Any:
    from benchsel.backends.ollama import OllamaBackend

    return OllamaBackend(host)


def _ollama_answers(host: str | None) -> bool:
    from benchsel.backends.select import ollama_answers

    return ollama_answers(host)


def _serving(tag: str | None, host: str | None) -> BaseServing:
    """Ollama's template and parameters for the base when Ollama serves it; none otherwise."""
    from benchsel.errors import BenchselError
    from benchsel.train.register import BaseServing, base_serving

    if tag is None or not _ollama_answers(host):
        return BaseServing()
    backend = _ollama(host)
    try:
        return base_serving(backend, tag)
    except BenchselError:  # the tag is not pulled there: the Modelfile still works without them
        return BaseServing()
    finally:
        backend.close()


def write_modelfile_beside(adapter: Path, base_ref: str, serving: BaseServing) -> Path:
    """``Modelfile`` next to the adapter: ``ollama create NAME -f Modelfile`` in that folder registers it."""
    from benchsel.train.export import write_modelfile

    # a relative ADAPTER path: ollama create reads it relative to the Modelfile's folder
    text = write_modelfile(base_ref, Path(adapter.name), serving.template, serving.parameters)
    path = adapter.parent / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path


def _register(
    plan: TrainPlan, tag: str | None, adapter: Path, serving: BaseServing, stage: StageFn
) -> str | None:
    from benchsel.train.register import register_adapter

    if plan.register is None:
        return None
    if tag is None:
        raise UsageError(
            f"--register {plan.register}: the base is not an Ollama model - train an Ollama tag "
            "(--base TAG or --from-selection), or create it by hand with the Modelfile"
        )
    backend = _ollama(plan.host)
    try:
        stage(f"Registering {plan.register} with Ollama at {backend.host} ({tag} + adapter)")
        return register_adapter(backend, plan.register, tag, adapter, serving)
    finally:
        backend.close()


# ---- evaluation ---------------------------------------------------------------------------------


def evaluate(
    plan: TrainPlan,
    outcome: TrainOutcome,
    evalset: EvalSet,
    selection: SelectionRecord | None,
    stage: StageFn,
) -> Evaluation:
    """Run the eval set on the fine-tune (Ollama when registered and answering, else llama-server with
    ``--lora``), and compare it with the base's run: the selection's run, or a fresh one."""
    from benchsel import api
    from benchsel.report import compare_runs, write_comparison

    before_stored = _before_from_selection(plan, selection, evalset)
    options = _run_options(plan, before_stored)
    if outcome.registered and _ollama_answers(plan.host):
        engine, after_model, before_model = "ollama", outcome.registered, serving_tag(outcome.base, selection)
        after_kwargs: dict[str, Any] = {"backend": "ollama", "host": plan.host}
        before_kwargs = after_kwargs
    else:
        engine = "llamacpp"
        after_model = before_model = embedded_model(outcome.base, outcome.out_dir)
        before_kwargs = {"backend": "llamacpp", "threads": plan.threads}
        after_kwargs = {**before_kwargs, "lora": outcome.adapter_gguf}
    common = {"evalset": evalset, "db": plan.db, **options}
    if before_stored is None:
        stage(f"Benchmarking the base {before_model} ({engine})")
        before_stored = api.run([str(before_model)], **before_kwargs, **common)
    stage(f"Benchmarking the fine-tune {after_model} ({engine})")
    after = api.run([after_model], fresh=True, **after_kwargs, **common)
    comparison = compare_runs(before_stored, after)
    written = write_comparison(comparison, outcome.out_dir, ("md", "html"))
    return Evaluation(before_stored, after, comparison, tuple(written), engine)


def _before_from_selection(
    plan: TrainPlan, selection: SelectionRecord | None, evalset: EvalSet
) -> RunSummary | None:
    """The selection's run, narrowed to the winner, when it was made on this eval set."""
    from benchsel.store import Store
    from benchsel.summary import summarize_run

    if selection is None or selection.evalset.hash != evalset.content_hash:
        return None
    with Store(plan.db) as store:
        summary = summarize_run(store, selection.run_id, evalset=evalset)
    winner = summary.model(str(selection.winners.train))
    return dataclasses.replace(summary, models=(winner,))


def _run_options(plan: TrainPlan, before: RunSummary | None) -> dict[str, Any]:
    """The base run's options (so the two runs are alike), else the plan's."""
    if before is not None:
        stored = before.run.options if isinstance(before.run.options, dict) else {}
        options = {key: stored[key] for key in RUN_OPTION_KEYS if key in stored}
        return {**options, "limit": stored.get("limit")}
    return {"limit": plan.eval_limit, "num_predict": plan.eval_num_predict}


def embedded_model(base: ResolvedBase, out_dir: Path) -> str:
    """What the embedded engine serves the base as: the demo name, or a ``.gguf`` path."""
    from benchsel.backends.demo import DEMO_MODELS

    if base.kind == "demo" and base.ollama_tag in DEMO_MODELS:
        return base.ollama_tag
    if base.gguf_path is not None:
        if base.gguf_path.suffix == ".gguf":
            return str(base.gguf_path)
        link = out_dir / "base.gguf"  # an Ollama blob has no suffix; llama-server does not mind
        if not link.exists():
            os.symlink(base.gguf_path.resolve(), link)
        return str(link)
    if base.architecture == "llama":
        from benchsel.train.export import export_base_gguf

        return str(export_base_gguf(base.hf_dir, out_dir / "base-f32.gguf"))
    raise UsageError(
        f"the base {base.hf_dir} has no GGUF for the embedded engine - convert it with llama.cpp's "
        "convert_hf_to_gguf.py and pass the .gguf as --base, or --register it with Ollama"
    )
