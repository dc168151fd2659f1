"""LoRA / QLoRA supervised fine-tuning with peft + trl's SFTTrainer, loss on the answer tokens only."""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchsel.errors import MissingExtra, UsageError
from benchsel.train.libs import quiet_training_libraries

if TYPE_CHECKING:
    from benchsel.train.base import ResolvedBase

SUMMARY_NAME = "training_summary.json"
IGNORE_INDEX = -100  # the label of a token the loss skips (the prompt), as in transformers
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MALLOC_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, fixed so that it no longer grows
ADAPTER_DIRNAME = "adapter"


class TrainSettings(BaseModel):
    """LoRA training settings; a ``train.toml`` holds the same keys (top level or under ``[train]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha; the update is scaled by alpha / r.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = Field("all-linear", description="peft target_modules.")
    learning_rate: float = Field(2e-4, gt=0.0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    epochs: float = Field(3.0, gt=0.0)
    per_device_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(4, ge=1, description="4 x 4 = an effective batch of 16.")
    max_seq_len: int = Field(2048, ge=16)
    early_stopping_patience: int = Field(2, ge=1, description="Epochs without a better eval loss.")
    load_best_model_at_end: bool = True
    seed: int = 42
    qlora: Literal["auto", "on", "off"] = Field("auto", description="auto: 4-bit NF4 when CUDA + bnb.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    logging_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = Field(
        True,
        description="Recompute each layer's activations in the backward pass instead of keeping them: "
        "the same gradients for a fraction of the memory, at about a third more compute.",
    )

    @property
    def effective_batch_size(self) -> int:
        return self.per_device_batch_size * self.gradient_accumulation_steps

    @classmethod
    def from_toml(cls, path: Path) -> TrainSettings:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{path}: cannot read training settings: {exc}") from exc
        table = raw.get("train", raw)
        try:
            return cls.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(_describe(err) for err in exc.errors())
            allowed = ", ".join(sorted(cls.model_fields))
            raise UsageError(f"{path}: {problems} (allowed keys: {allowed})") from exc

    @classmethod
    def merged(
        cls, config: Path | None, overrides: Mapping[str, Any], names: Mapping[str, str] | None = None
    ) -> TrainSettings:
        """The defaults, then a train.toml ``config``, then ``overrides`` (field -> value; None is not
        given). A bad override is a UsageError naming it as ``names`` does (field -> e.g. its CLI flag)."""
        base = cls.from_toml(config) if config else cls.model_validate({})
        given = {key: value for key, value in overrides.items() if value is not None}
        if not given:
            return base
        try:
            return cls.model_validate({**base.model_dump(), **given})
        except ValidationError as exc:
            err = exc.errors()[0]
            field_name = str(err["loc"][0])
            raise UsageError(f"{(names or {}).get(field_name, field_name)}: {err['msg']}") from None

    @classmethod
    def default(cls, field_name: str) -> Any:
        """A setting's default value, for help texts."""
        return cls.model_fields[field_name].default


def _describe(err: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown setting '{where}'"
    return f"'{where}': {err['msg']}"


@dataclass(frozen=True)
class TrainProgress:
    """One progress event: after a logged step or an evaluation."""

    step: int
    max_steps: int
    epoch: float
    loss: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


ProgressFn = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    summary_path: Path
    train_losses: tuple[float, ...]
    eval_losses: tuple[float, ...]
    best_eval_loss: float | None
    train_seconds: float
    tokens_per_s: float
    peak_memory_bytes: int
    steps: int
    stopped_early: bool
    device: str
    qlora: bool
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    baseline_memory_bytes: int = 0
    """Resident memory when the peak count started (before the weights were loaded): the peak minus
    this is what training itself took."""


def _require_training() -> None:
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("training", "train") from exc


def _use_qlora(settings: TrainSettings) -> bool:
    import importlib.util

    import torch

    available = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None
    if settings.qlora == "on" and not available:
        raise UsageError(
            "qlora = 'on' needs a CUDA GPU and bitsandbytes - run `pip install bitsandbytes` "
            "on a CUDA machine, or set qlora = 'auto'"
        )
    return available and settings.qlora != "off"


def _use_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def load_model_for_training(hf_dir: Path, settings: TrainSettings) -> tuple[Any, bool]:
    """The base model, 4-bit NF4 when QLoRA applies; returns (model, qlora)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    qlora = _use_qlora(settings)
    dtype = torch.bfloat16 if _use_bf16() else torch.float32
    if not qlora:
        return AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype), False
    from peft import prepare_model_for_kbit_training

    # neither carries annotations (transformers 5, peft 0.x): typed here, where benchsel calls them
    quant_config: Callable[..., Any] = BitsAndBytesConfig
    prepare_for_kbit: Callable[[Any], Any] = prepare_model_for_kbit_training
    quant = quant_config(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(hf_dir, quantization_config=quant, dtype=dtype)
    return prepare_for_kbit(model), True


def _rendered(examples: Sequence[Any], tokenizer: Any, max_seq_len: int) -> list[dict[str, list[int]]]:
    """Pre-tokenised rows; ``examples`` may be data.Example objects or already-rendered dicts."""
    rows = []
    for example in examples:
        if isinstance(example, Mapping) and "input_ids" in example:
            row = example
        else:
            from benchsel.train.data import render_for_training

            row = render_for_training(example, tokenizer)
        ids = list(row["input_ids"])[:max_seq_len]
        labels = list(row["labels"])[:max_seq_len]
        rows.append({"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids)})
    return rows


def _progress_callback(progress: ProgressFn | None, history: list[dict[str, Any]]) -> Any:
    from transformers import TrainerCallback

    class _Forward(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            logs = dict(logs or {})
            history.append({"step": state.global_step, "epoch": state.epoch, **logs})
            if progress is None or ("loss" not in logs and "eval_loss" not in logs):
                return
            elapsed = time.perf_counter() - self.started
            tokens = getattr(state, "num_input_tokens_seen", 0) or 0
            done = state.global_step / state.max_steps if state.max_steps else 0.0
            progress(
                TrainProgress(
                    step=state.global_step,
                    max_steps=state.max_steps,
                    epoch=float(state.epoch or 0.0),
                    loss=_number(logs.get("loss")),
                    eval_loss=_number(logs.get("eval_loss")),
                    tokens_per_s=tokens / elapsed if elapsed > 0 else None,
                    eta_s=elapsed * (1 - done) / done if done > 0 else None,
                )
            )

    return _Forward()


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _sft_config(settings: TrainSettings, checkpoints: Path, qlora: bool) -> Any:
    from trl import SFTConfig

    bf16 = _use_bf16()
    return SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        **warmup_arguments(settings.warmup_ratio),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=settings.early_stopping_patience + 1,
        save_only_model=True,
        load_best_model_at_end=settings.load_best_model_at_end,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=settings.logging_steps,
        max_length=settings.max_seq_len,
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not _cuda(),
        bf16=bf16,
        fp16=False,
        **checkpointing_arguments(settings.gradient_checkpointing),
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def _config_fields() -> set[str]:
    import dataclasses

    from trl import SFTConfig

    return {f.name for f in dataclasses.fields(SFTConfig)}


def warmup_arguments(ratio: float) -> dict[str, Any]:
    """The warm-up as a fraction of the steps. transformers 4.x reads ``warmup_steps`` as a step count
    (0.03 -> no warm-up at all) and the fraction from ``warmup_ratio``; transformers 5 dropped
    ``warmup_ratio`` and reads a float ``warmup_steps`` below 1 as the fraction."""
    return {"warmup_ratio": ratio} if "warmup_ratio" in _config_fields() else {"warmup_steps": ratio}


def checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Activation (gradient) checkpointing on or off, under the name this transformers uses (5.x renamed
    ``gradient_checkpointing`` to ``activation_checkpointing``; TRL defaults it to on). The non-reentrant
    variant works with frozen inputs (LoRA)."""
    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in _config_fields()
        else "gradient_checkpointing"
    )
    kwargs = {f"{name}_kwargs": {"use_reentrant": False}} if enabled else {}
    return {name: enabled, **kwargs}


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def return_freed_memory() -> None:
    """Make the C allocator hand freed tensors back to the system (glibc on Linux).

    glibc raises its mmap threshold (up to 32 MiB) each time a large block is freed, so after the first
    step a step's activations come from the heap, and what is freed there stays resident: measured on
    SmolLM2-135M, peak RSS 3.2 GiB against 1.6 GiB with the thresholds fixed, at the same step time.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or "libc" not in name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return


def reset_peak_memory() -> None:
    """Start the peak-memory count afresh, so the peak is training's, not an earlier phase's (the
    dequantization of a GGUF, or an earlier training in the same process)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):  # Linux: writing 5 resets the resident-set high-water mark (VmHWM)
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def current_memory_bytes() -> int:
    """CUDA's allocated bytes, else the process's resident set (0 where /proc is missing)."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.memory_allocated())
    return _proc_status_bytes("VmRSS") or 0


def peak_memory_bytes() -> int:
    """Peak since :func:`reset_peak_memory`: CUDA's allocated bytes, else the process's peak RSS."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _proc_status_bytes(key: str) -> int | None:
    """A memory figure of /proc/self/status (``VmRSS``, ``VmHWM``: kB there) in bytes; None where
    /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def train_lora(
    base: ResolvedBase,
    train: Sequence[Any],
    validation: Sequence[Any],
    settings: TrainSettings,
    out_dir: Path,
    progress: ProgressFn | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``base``; writes ``out_dir/adapter`` and ``out_dir/training_summary.json``.
    ``on_stage`` hears what the slow phases before the first step are doing."""
    _require_training()
    if not train:
        raise UsageError("no training examples - build or import training data first (`benchsel train data`)")
    if not validation:
        raise UsageError("no validation examples - early stopping needs a validation split")
    stage = on_stage or (lambda text: None)
    with quiet_training_libraries():
        return _train(base, train, validation, settings, Path(out_dir), progress, stage)


def _train(
    base: ResolvedBase,
    train: Sequence[Any],
    validation: Sequence[Any],
    settings: TrainSettings,
    out_dir: Path,
    progress: ProgressFn | None,
    stage: Callable[[str], None],
) -> TrainResult:
    import gc

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, EarlyStoppingCallback, PrinterCallback, set_seed

    set_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base.hf_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_rows = _rendered(train, tokenizer, settings.max_seq_len)
    eval_rows = _rendered(validation, tokenizer, settings.max_seq_len)
    gc.collect()  # whatever an earlier phase (dequantizing) left behind, before the peak is counted
    return_freed_memory()
    reset_peak_memory()
    baseline = current_memory_bytes()
    stage(f"Loading the base weights from {base.hf_dir}")
    model, qlora = load_model_for_training(base.hf_dir, settings)
    lora = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    history: list[dict[str, Any]] = []
    callbacks = [_progress_callback(progress, history)]
    if settings.load_best_model_at_end:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    stage("Preparing the trainer (LoRA layers, optimizer)")
    trainer = _trainer_class()(
        model=model,
        args=_sft_config(settings, out_dir / "checkpoints", qlora),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    stage(f"Training: the first step can take a while on a CPU ({_tokens(train_rows)} tokens per epoch)")
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    adapter_dir = out_dir / ADAPTER_DIRNAME
    trained: Any = trainer.model
    trained.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    state = trainer.state
    return _summarise(
        base,
        settings,
        out_dir,
        adapter_dir,
        history,
        seconds,
        state,
        qlora,
        counts={"train": len(train_rows), "validation": len(eval_rows)},
        baseline=baseline,
    )


def _tokens(rows: Sequence[Mapping[str, Sequence[int]]]) -> int:
    return sum(len(row["input_ids"]) for row in rows)


def answer_only_loss(model: Any, inputs: Mapping[str, Any], num_items_in_batch: Any = None) -> Any:
    """The causal-LM loss computed from the logits of the answer positions only.

    The loss is on the answer tokens, so the logits of every prompt position are computed only to be
    ignored; at a 49k-152k vocabulary they are the largest tensors of a step (fp32, with their
    softmax for the backward pass). Keeping only the positions whose next token is scored in some row
    gives the same loss and gradients as the model's own loss, in a fraction of the memory and time.
    """
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    targets = labels[:, 1:]
    scored = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    outputs = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs.get("attention_mask"),
        logits_to_keep=scored,
        use_cache=False,
    )
    logits = outputs.logits.float()
    picked = targets[:, scored]
    if num_items_in_batch is None:
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=IGNORE_INDEX
        )
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _trainer_class() -> Any:
    """SFTTrainer with :func:`answer_only_loss` as its loss (training and evaluation alike)."""
    from trl import SFTTrainer

    class AnswerOnlySFTTrainer(SFTTrainer):
        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            loss = answer_only_loss(model, inputs, num_items_in_batch)
            # evaluation asks for the outputs too; a dict with only the loss means "no logits kept"
            return (loss, {"loss": loss}) if return_outputs else loss

    return AnswerOnlySFTTrainer


def _summarise(
    base: ResolvedBase,
    settings: TrainSettings,
    out_dir: Path,
    adapter_dir: Path,
    history: list[dict[str, Any]],
    seconds: float,
    state: Any,
    qlora: bool,
    counts: dict[str, int],
    baseline: int = 0,
) -> TrainResult:
    train_losses = tuple(float(h["loss"]) for h in history if "loss" in h)
    eval_losses = tuple(float(h["eval_loss"]) for h in history if "eval_loss" in h)
    tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
    planned_epochs = settings.epochs if settings.max_steps is None else None
    result = TrainResult(
        adapter_dir=adapter_dir,
        summary_path=out_dir / SUMMARY_NAME,
        train_losses=train_losses,
        eval_losses=eval_losses,
        best_eval_loss=state.best_metric,
        train_seconds=seconds,
        tokens_per_s=tokens / seconds if seconds > 0 else 0.0,
        peak_memory_bytes=peak_memory_bytes(),
        steps=int(state.global_step),
        stopped_early=planned_epochs is not None and float(state.epoch or 0) < planned_epochs - 1e-6,
        device="cuda" if _cuda() else "cpu",
        qlora=qlora,
        history=history,
        baseline_memory_bytes=baseline,
    )
    summary = {
        "base": {
            "kind": base.kind,
            "hf_dir": str(base.hf_dir),
            "architecture": base.architecture,
            "gguf_path": str(base.gguf_path) if base.gguf_path else None,
            "ollama_tag": base.ollama_tag,
        },
        "settings": settings.model_dump(),
        "effective_batch_size": settings.effective_batch_size,
        "data_counts": counts,
        "losses_per_epoch": _per_epoch(history),
        "tokens_seen": tokens,
        "peak_memory_kind": "cuda_max_allocated" if _cuda() else "process_max_rss",
        **{k: v for k, v in asdict(result).items() if k not in {"history", "adapter_dir", "summary_path"}},
        "adapter_dir": str(adapter_dir),
    }
    result.summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return result


def _per_epoch(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean train loss and the eval loss for each (possibly partial) epoch."""
    epochs: dict[int, dict[str, Any]] = {}
    for h in history:
        epoch = h.get("epoch") or 0.0
        index = max(int(-(-epoch // 1)), 1)  # ceil: logs inside epoch 1 have 0 < epoch <= 1
        row = epochs.setdefault(index, {"epoch": index, "train_losses": [], "eval_loss": None})
        if "loss" in h:
            row["train_losses"].append(float(h["loss"]))
        if "eval_loss" in h:
            row["eval_loss"] = float(h["eval_loss"])
    out = []
    for index in sorted(epochs):
        row = epochs[index]
        losses = row.pop("train_losses")
        row["train_loss"] = sum(losses) / len(losses) if losses else None
        out.append(row)
    return out


def merge_and_save(adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a PEFT adapter into its base and save the full model as safetensors."""
    _require_training()
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir)
    merged = model.merge_and_unload()
    out_dir = Path(out_dir)
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out_dir)
    return out_dir
