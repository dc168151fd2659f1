"""Training once through: data -> LoRA -> GGUF adapter + Modelfile -> Ollama. It never benchmarks:
benchsel.loop runs the eval set again on what :func:`train` returns.

Every step is also a function of its own module.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchsel.defaults import EVALSET as DEFAULT_EVALSET
from benchsel.defaults import OUT_DIR
from benchsel.errors import BenchselError, MissingExtra, UsageError
from benchsel.train.lora import TrainSettings

if TYPE_CHECKING:
    from benchsel.evalset import EvalSet
    from benchsel.runner import EventCallback
    from benchsel.selection import SelectionRecord
    from benchsel.train.base import ResolvedBase
    from benchsel.train.data import DataReport, Example, Format, PreparedData
    from benchsel.train.lora import ProgressFn, TrainResult
    from benchsel.train.register import BaseServing, RegisterMode

DEFAULT_SYNTHETIC_N = 600
TRAINING_MODULES = ("torch", "transformers", "peft", "trl")

StageFn = Callable[[str], None]


@dataclass(frozen=True)
class TrainPlan:
    """Everything ``benchsel train`` was asked to do. ``base`` or ``from_selection`` names the base;
    an option set here (not None) always wins over what the selection says."""

    base: str | None = None
    from_selection: Path | None = None
    data: Path | None = None
    fmt: Format = "auto"
    evalset: str | Path | EvalSet | None = None  # an EvalSet: already loaded (on a Ray node, say)
    drop_leaks: bool = False
    settings: TrainSettings = field(default_factory=lambda: TrainSettings.model_validate({}))
    out_dir: Path | None = None
    register: str | None = None
    register_mode: RegisterMode = "merged"
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
class FromSelection:
    """What ``--from-selection`` contributes: the winner to train, the eval set, the run to compare with."""

    path: Path
    winner: str
    run_id: str
    evalset_name: str | None
    evalset_hash: str | None
    served_by_ollama: bool
    record: SelectionRecord | None = None  # the validated selection.json, when read from a file


@dataclass(frozen=True)
class Registration:
    """How the fine-tune was (or can be) registered with Ollama: the Modelfile, the command to run."""

    name: str
    mode: str
    modelfile: Path
    command: str
    merged_gguf: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class TrainOutcome:
    out_dir: Path
    base_name: str
    base: ResolvedBase
    data_report: DataReport
    training: TrainResult
    adapter_gguf: Path
    modelfile: Path
    fine_tune_name: str = ""
    registration: Registration | None = None
    merged_dir: Path | None = None
    evalset: EvalSet | None = field(default=None, repr=False)
    selection: FromSelection | None = None

    @property
    def registered(self) -> str | None:
        """The Ollama name the fine-tune was registered as, when registration succeeded."""
        return self.registration.name if self.registration and self.registration.ok else None


def require_training_extra() -> None:
    """Refuse early, before any work, when torch / transformers / peft / trl are missing."""
    missing = [name for name in TRAINING_MODULES if not _module_available(name)]
    if missing:
        raise MissingExtra(f"benchsel train ({', '.join(missing)} not installed)", "train")


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def default_out_dir(root: Path = OUT_DIR) -> Path:
    return root / f"train-{datetime.now():%Y%m%d-%H%M%S}"


def adapter_label(plan: TrainPlan, out_dir: Path) -> str:
    """What tells the fine-tune from its base: the --register name, else the output folder's name."""
    return plan.register or out_dir.name


def fine_tune_name(base_name: str, label: str) -> str:
    """``smollm2:135m+extractor``: the name the fine-tune has in the output and the run store."""
    return f"{base_name}+{label}"


# ---- the pipeline -------------------------------------------------------------------------------


def train(
    plan: TrainPlan,
    *,
    on_stage: StageFn | None = None,
    on_progress: ProgressFn | None = None,
    on_event: EventCallback | None = None,
) -> TrainOutcome:
    """Train a LoRA on the plan's base, export it and register it (benchsel.loop benchmarks it)."""
    from benchsel.evalset import load_evalset
    from benchsel.selection import evalset_for_training
    from benchsel.train.base import resolve_base
    from benchsel.train.export import export_gguf_adapter
    from benchsel.train.lora import merge_and_save, train_lora

    stage = on_stage or (lambda text: None)
    require_training_extra()
    selection = read_selection(plan.from_selection)
    base_name = plan.base or (selection.winner if selection else "")
    if plan.evalset is None and selection is not None and selection.record is not None:
        evalset = evalset_for_training(selection.record)  # by stored path, checked against its content hash
    elif plan.evalset is not None and not isinstance(plan.evalset, (str, Path)):
        evalset = plan.evalset
    else:
        named = selection.evalset_name if selection else None
        evalset = load_evalset(plan.evalset or named or DEFAULT_EVALSET)
    if selection is not None:
        stage(selection_line(plan, selection, evalset.name))
    # absolute from here on: llama-server and llama-export-lora run in other working directories
    out_dir = Path(plan.out_dir or default_out_dir()).expanduser().resolve()
    if plan.register is not None:
        _preflight_register(plan)
    out_dir.mkdir(parents=True, exist_ok=True)

    data = build_data(plan, evalset, out_dir, stage)
    stage(f"Resolving base {base_name}")
    base = resolve_base(base_name, cache_dir=plan.cache_dir, on_stage=stage)
    tag = serving_tag(base, selection)
    if plan.register is not None:
        _preflight_base(plan, base, tag)
    stage(f"Tokenizing {len(data.train) + len(data.validation)} examples with {base_name}'s chat template")
    train_rows, val_rows = render_rows(base, data.train), render_rows(base, data.validation)
    label = adapter_label(plan, out_dir)
    name = fine_tune_name(base_name, label)
    stage(
        f"Training {name}: LoRA r={plan.settings.r} alpha={plan.settings.alpha} on {len(train_rows)} "
        f"examples ({len(val_rows)} for validation)"
    )
    result = train_lora(base, train_rows, val_rows, plan.settings, out_dir, on_progress, on_stage=stage)
    adapter = export_gguf_adapter(result.adapter_dir, base, out_dir / "adapter.gguf")
    stage(f"Exported {adapter}")

    serving = _serving(tag, plan.host)
    modelfile = write_modelfile_beside(adapter, tag or str(base.gguf_path or base.hf_dir), serving)
    registration = _register(plan, base, tag, adapter, serving, stage) if plan.register else None
    if plan.merged:
        stage("Saving the merged model as safetensors")
    merged = merge_and_save(result.adapter_dir, out_dir / "merged") if plan.merged else None
    outcome = TrainOutcome(
        out_dir,
        base_name,
        base,
        data.report,
        result,
        adapter,
        registration.modelfile if registration else modelfile,
        name,
        registration,
        merged,
        evalset=evalset,
        selection=selection,
    )
    return outcome


def read_selection(path: Path | None) -> FromSelection | None:
    """The parts of a ``selection.json`` that training uses (the one place that reads it; the typed
    record is validated before any work, so a hand-edited file is one clear error)."""
    if path is None:
        return None
    from benchsel.selection import load_selection

    record = load_selection(path)
    train_base = record.train_base
    return FromSelection(
        path=Path(path),
        winner=str(record.winners.train),
        run_id=record.run_id,
        evalset_name=record.evalset.name,
        evalset_hash=record.evalset.hash,
        served_by_ollama=train_base is not None and train_base.backend == "ollama",
        record=record,
    )


def selection_line(plan: TrainPlan, selection: FromSelection, evalset_name: str) -> str:
    """One line saying what was taken from the selection (options on the command line win)."""
    taken = []
    if plan.base is None:
        taken.append(f"base {selection.winner}")
    if plan.evalset is None:
        taken.append(f"eval set {evalset_name}")
    taken.append(f"the base's scores from run {selection.run_id}")
    return f"From {selection.path}: " + ", ".join(taken) + " (options given on the command line win)"


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
    from benchsel.chat_templates import GEMMA_TURN_TEMPLATE

    return GEMMA_TURN_TEMPLATE if "gemma" in architecture.lower() else None


def render_rows(base: ResolvedBase, examples: tuple[Example, ...]) -> list[dict[str, list[int]]]:
    """Token ids and labels rendered with the base's own chat template (loss on the answer only)."""
    from transformers import AutoTokenizer

    from benchsel.train.data import render_for_training

    tokenizer = AutoTokenizer.from_pretrained(base.hf_dir)
    fallback = chat_template_fallback(base.architecture)
    return [render_for_training(e, tokenizer, fallback_template=fallback) for e in examples]


# ---- Modelfile and registration ----------------------------------------------------------------


def serving_tag(base: ResolvedBase, selection: FromSelection | None) -> str | None:
    """The Ollama tag the adapter goes on: the base's own, or the selection winner served by Ollama."""
    if base.ollama_tag:
        return base.ollama_tag
    if selection is not None and selection.served_by_ollama:
        return selection.winner
    return None


def _ollama(host: str | None) -> Any:
    from benchsel.backends.ollama import OllamaBackend

    return OllamaBackend(host)


def _ollama_answers(host: str | None) -> bool:
    from benchsel.backends.factory import ollama_answers

    return ollama_answers(host)


def ollama_serves(host: str | None, tag: str) -> bool:
    """Whether the Ollama at ``host`` answers and has ``tag``."""
    if not _ollama_answers(host):
        return False
    backend = _ollama(host)
    try:
        backend.show(tag)
        return True
    except BenchselError:
        return False
    finally:
        backend.close()


def _preflight_register(plan: TrainPlan) -> None:
    """Before any training: the name is one Ollama accepts and an Ollama answers."""
    from benchsel.backends.ollama import resolve_host
    from benchsel.train.register import check_model_name

    check_model_name(str(plan.register))
    if not _ollama_answers(plan.host):
        raise UsageError(
            f"--register {plan.register}: no Ollama answers at {resolve_host(plan.host)} - start it "
            "(`ollama serve`) or set OLLAMA_HOST / --host; without --register the adapter and a "
            "Modelfile are still written"
        )


def _preflight_base(plan: TrainPlan, base: ResolvedBase, tag: str | None) -> None:
    """Before any training: the chosen registration can be made from this base."""
    if plan.register_mode == "adapter":
        if tag is None:
            raise UsageError(
                f"--register {plan.register} --register-mode adapter: the base is not an Ollama model - "
                "train an Ollama tag (--base TAG), or use --register-mode merged"
            )
        return
    from benchsel.train.export import export_lora_binary

    export_lora_binary()
    if base.gguf_path is None and base.architecture != "llama":
        raise UsageError(
            f"--register {plan.register}: the base {base.hf_dir} has no GGUF to merge the adapter into - "
            "pass the base as a .gguf file or an Ollama tag, or use --register-mode adapter"
        )


def _serving(tag: str | None, host: str | None) -> BaseServing:
    """Ollama's template, parameters and licence for the base when Ollama serves it; none otherwise."""
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


def write_modelfile_beside(
    adapter: Path, base_ref: str, serving: BaseServing, *, merged: Path | None = None
) -> Path:
    """``Modelfile`` next to the adapter: ``ollama create NAME -f Modelfile`` registers it. With
    ``merged``, ``FROM merged.gguf`` (no ADAPTER, which newer Ollama versions refuse)."""
    from benchsel.train.export import write_modelfile

    if merged is not None:
        text = write_modelfile(merged, None, serving.template, serving.parameters, serving.license)
    else:
        # a relative ADAPTER path: ollama create reads it relative to the Modelfile's folder
        text = write_modelfile(base_ref, Path(adapter.name), serving.template, serving.parameters)
    path = adapter.parent / "Modelfile"
    path.write_text(text, encoding="utf-8")
    return path


def base_gguf(base: ResolvedBase, out_dir: Path) -> Path:
    """A GGUF file of the base: its own, or an F32 conversion of a small Llama."""
    return Path(embedded_model_path(base, out_dir))


def _register(
    plan: TrainPlan,
    base: ResolvedBase,
    tag: str | None,
    adapter: Path,
    serving: BaseServing,
    stage: StageFn,
) -> Registration:
    """Register the fine-tune with Ollama. A failure here does not lose the training: the result says
    which files were saved and the ``ollama create`` command that registers them later."""
    from benchsel.train.export import merge_gguf
    from benchsel.train.register import create_command, register_adapter, register_merged

    name = str(plan.register)
    merged: Path | None = None
    modelfile = adapter.parent / "Modelfile"
    backend = None
    try:
        if plan.register_mode == "merged":
            stage(
                f"Merging the adapter into the base with llama-export-lora ({adapter.parent / 'merged.gguf'})"
            )
            merged = merge_gguf(base_gguf(base, adapter.parent), adapter, adapter.parent / "merged.gguf")
            modelfile = write_modelfile_beside(adapter, "", serving, merged=merged)
        backend = _ollama(plan.host)
        what = "merged.gguf" if merged is not None else f"{tag} + adapter.gguf"
        stage(f"Registering {name} with Ollama at {backend.host} ({what})")
        if merged is not None:
            register_merged(backend, name, merged, serving)
        else:
            register_adapter(backend, name, str(tag), adapter, serving)
        return Registration(name, plan.register_mode, modelfile, create_command(name, modelfile), merged)
    except BenchselError as exc:
        command = create_command(name, modelfile)
        saved = ", ".join(str(p) for p in (adapter, merged, modelfile) if p is not None and p.exists())
        stage(f"Registration of {name} failed: {exc}")
        stage(f"Saved: {saved}. Register it later with: {command}")
        return Registration(name, plan.register_mode, modelfile, command, merged, error=str(exc))
    finally:
        if backend is not None:
            backend.close()


def embedded_model(base: ResolvedBase, out_dir: Path) -> str:
    """What the embedded engine serves the base as: the demo name, or a ``.gguf`` path."""
    from benchsel.backends.demo import DEMO_MODELS

    if base.kind == "demo" and base.ollama_tag in DEMO_MODELS:
        return base.ollama_tag
    return embedded_model_path(base, out_dir)


def embedded_model_path(base: ResolvedBase, out_dir: Path) -> str:
    """A ``.gguf`` path of the base for llama.cpp's tools."""
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
