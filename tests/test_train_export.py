"""GGUF export: a tiny Llama and its trained LoRA, served by a real llama-server and checked token by token
against transformers + peft."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_train_lora import SYSTEM, extraction_examples

from benchsel.train.export import permute_qk, write_modelfile

STEPS = 12
# Allowed gap between llama.cpp's and transformers' log-probabilities (f32 base, f16 adapter); an
# adapter exported without the q/k row permutation was already 0.03 off at the first step.
LOGPROB_TOLERANCE = 0.005
# A random tiny model has near-uniform logits: where transformers' top two are closer than this, either
# token is a correct greedy choice and only the log-probabilities are compared.
NEAR_TIE = 0.02


def test_modelfile_has_from_adapter_template_and_parameters() -> None:
    text = write_modelfile(
        "smollm2:135m",
        Path("/out/adapter.gguf"),
        "{{ .Prompt }}",
        {"stop": ["<|im_end|>", "<|endoftext|>"], "temperature": 0, "num_ctx": 4096},
    )
    assert text.splitlines() == [
        "FROM smollm2:135m",
        "ADAPTER /out/adapter.gguf",
        'TEMPLATE """{{ .Prompt }}"""',
        'PARAMETER stop "<|im_end|>"',
        'PARAMETER stop "<|endoftext|>"',
        "PARAMETER temperature 0",
        "PARAMETER num_ctx 4096",
    ]


def test_permute_qk_interleaves_the_rotary_halves_of_each_head() -> None:
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)  # 2 heads of 4 rows: [x0 x1 | y0 y1] per head
    assert permute_qk(rows, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert permute_qk(rows, 4, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@dataclass(frozen=True)
class Exported:
    hf_dir: Path
    adapter_dir: Path
    base_gguf: Path
    adapter_gguf: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    pytest.importorskip("trl")
    from benchsel.train.base import resolve_base
    from benchsel.train.export import export_base_gguf, export_gguf_adapter
    from benchsel.train.lora import TrainSettings, train_lora
    from benchsel.train.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("export")
    base = resolve_base(str(build_tiny_llama(root / "tiny")))
    # A high learning rate so the adapter visibly moves the tiny model's greedy output.
    settings = TrainSettings(
        r=8, alpha=16, dropout=0.0, learning_rate=2e-2, epochs=3, warmup_ratio=0.0,
        per_device_batch_size=4, gradient_accumulation_steps=1, max_seq_len=256, seed=1,
    )  # fmt: skip
    result = train_lora(base, extraction_examples(24, 1), extraction_examples(4, 2), settings, root / "run")
    base_gguf = export_base_gguf(base.hf_dir, root / "tiny-f32.gguf")
    adapter_gguf = export_gguf_adapter(result.adapter_dir, base, root / "adapter.gguf")
    return Exported(base.hf_dir, result.adapter_dir, base_gguf, adapter_gguf)


@pytest.mark.train
def test_adapter_gguf_layout(exported: Exported) -> None:
    from gguf import GGUFReader

    reader = GGUFReader(exported.adapter_gguf)
    fields = {
        name: reader.get_field(name).contents() for name in reader.fields if not name.startswith("GGUF.")
    }
    assert fields["general.type"] == "adapter"
    assert fields["general.architecture"] == "llama"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(16.0)
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # ggml order: [ne0, ne1]
    modules = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    assert set(shapes) == {f"blk.{i}.{m}.weight.lora_{ab}" for i in (0, 1) for m in modules for ab in "ab"}
    # hidden 64, 4 heads, 2 KV heads (k/v out 32), MLP 128, r 8: A is [in, r], B is [r, out]
    assert shapes["blk.0.attn_q.weight.lora_a"] == [64, 8] and shapes["blk.0.attn_q.weight.lora_b"] == [8, 64]
    assert shapes["blk.1.attn_k.weight.lora_b"] == [8, 32]
    assert shapes["blk.0.ffn_down.weight.lora_a"] == [128, 8] and shapes["blk.0.ffn_up.weight.lora_b"] == [
        8,
        128,
    ]


def _prompt_ids(hf_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "The Alice works for Kafka."},
    ]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    return list(encoded["input_ids"])


def _hf_steps(model: Any, prompt: list[int]) -> list[tuple[int, float, list[float]]]:
    """Greedy decoding with transformers: (token, top-2 logit margin, log-probabilities) per step."""
    import torch

    sequence, steps = list(prompt), []
    with torch.no_grad():
        for _ in range(STEPS):
            logits = model(torch.tensor([sequence])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            token = int(top.indices[0])
            steps.append(
                (token, float(top.values[0] - top.values[1]), torch.log_softmax(logits, -1).tolist())
            )
            sequence.append(token)
    return steps


def _llama_step(url: str, ids: list[int], lora_scale: float) -> tuple[int, dict[int, float]]:
    """One greedy token from llama-server for a token-id prompt, with its top log-probabilities.

    llama-server holds back the probabilities of a token that ends inside a UTF-8 character (common for
    a random model's byte tokens); those steps compare the token only."""
    body = {
        "prompt": ids, "n_predict": 1, "temperature": 0.0, "n_probs": 5, "cache_prompt": False,
        "return_tokens": True, "lora": [{"id": 0, "scale": lora_scale}],
    }  # fmt: skip
    reply = httpx.post(f"{url}/completion", json=body, timeout=60).json()
    token = int(reply["tokens"][0])
    probabilities = reply.get("completion_probabilities") or []
    if not probabilities or int(probabilities[0]["id"]) != token:
        return token, {}
    return token, {int(t["id"]): float(t["logprob"]) for t in probabilities[0]["top_logprobs"]}


def _llama_greedy(url: str, ids: list[int], lora_scale: float) -> list[int]:
    body = {
        "prompt": ids, "n_predict": STEPS, "temperature": 0.0, "cache_prompt": False, "ignore_eos": True,
        "return_tokens": True, "lora": [{"id": 0, "scale": lora_scale}],
    }  # fmt: skip
    return [int(t) for t in httpx.post(f"{url}/completion", json=body, timeout=60).json()["tokens"]]


def _assert_same_as_transformers(
    url: str, prompt: list[int], hf: list[tuple[int, float, list[float]]], lora_scale: float
) -> None:
    """Teacher-forced on transformers' greedy path: same top-1 (unless a near tie), same log-probs."""
    prefix, compared = list(prompt), 0
    for step, (token, margin, logprobs) in enumerate(hf):
        llama_token, llama_logprobs = _llama_step(url, prefix, lora_scale)
        compared += len(llama_logprobs)
        if margin > NEAR_TIE:
            assert llama_token == token, f"step {step}: llama.cpp chose {llama_token}, transformers {token}"
        for candidate, value in llama_logprobs.items():
            assert value == pytest.approx(logprobs[candidate], abs=LOGPROB_TOLERANCE), f"step {step}"
        prefix.append(token)
    assert compared >= STEPS, "too few log-probabilities came back to compare"


@pytest.mark.train
@pytest.mark.integration
def test_llama_server_with_the_adapter_matches_transformers_and_peft(exported: Exported) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from benchsel.backends.engine import LlamaServer

    prompt = _prompt_ids(exported.hf_dir)
    base_model = AutoModelForCausalLM.from_pretrained(exported.hf_dir, dtype=torch.float32).eval()
    hf_base = _hf_steps(base_model, prompt)
    hf_lora = _hf_steps(PeftModel.from_pretrained(base_model, exported.adapter_dir).eval(), prompt)
    hf_base_tokens, hf_lora_tokens = [s[0] for s in hf_base], [s[0] for s in hf_lora]
    assert hf_lora_tokens != hf_base_tokens, "the adapter must change the output, or the check proves nothing"

    with LlamaServer(exported.base_gguf, ctx=512, lora=exported.adapter_gguf) as server:
        _assert_same_as_transformers(server.base_url, prompt, hf_base, lora_scale=0.0)
        _assert_same_as_transformers(server.base_url, prompt, hf_lora, lora_scale=1.0)
        llama_lora = _llama_greedy(server.base_url, prompt, 1.0)
        llama_base = _llama_greedy(server.base_url, prompt, 0.0)
        chat = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "The Docker uses Redis."}], "max_tokens": 8},
            timeout=60,
        ).json()
    assert llama_lora != llama_base
    # Free-running greedy agrees up to the first near tie, where either choice is right.
    ties = [i for i, (_, margin, _) in enumerate(hf_lora) if margin <= NEAR_TIE]
    agree = ties[0] if ties else STEPS
    assert llama_lora[:agree] == hf_lora_tokens[:agree]
    assert chat["choices"][0]["message"]["content"] is not None
    assert chat["usage"]["completion_tokens"] > 0


def _fake_ollama_store(root: Path, name: str, gguf_path: Path) -> Path:
    """An Ollama model folder holding ``gguf_path`` as the model layer of ``name:latest``."""
    import hashlib
    import json
    import shutil

    digest = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    (root / "blobs").mkdir(parents=True)
    shutil.copy(gguf_path, root / "blobs" / f"sha256-{digest}")
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / "latest"
    manifest.parent.mkdir(parents=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}), encoding="utf-8")
    return root


@pytest.mark.train
def test_an_ollama_tag_resolves_to_its_blob_and_loads_as_the_same_model(
    exported: Exported, tmp_path: Path
) -> None:
    """The exported GGUF, served as an Ollama blob, comes back through transformers as identical weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from benchsel.train.base import resolve_base

    models = _fake_ollama_store(tmp_path / "ollama", "tiny", exported.base_gguf)
    resolved = resolve_base("tiny", cache_dir=tmp_path / "bases", ollama_models=models)
    assert (resolved.kind, resolved.architecture, resolved.ollama_tag) == ("ollama", "llama", "tiny")
    assert resolved.gguf_path is not None and resolved.gguf_path.parent == models / "blobs"
    assert "quantization_config" not in (resolved.hf_dir / "config.json").read_text()
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 10]])
    original = AutoModelForCausalLM.from_pretrained(exported.hf_dir)(ids).logits
    assert torch.allclose(
        AutoModelForCausalLM.from_pretrained(resolved.hf_dir)(ids).logits, original, atol=1e-5
    )


def test_an_unpulled_ollama_tag_says_how_to_pull_it(tmp_path: Path) -> None:
    from benchsel.errors import ModelNotFound
    from benchsel.train.base import resolve_base

    with pytest.raises(ModelNotFound, match=r"'gemma3:4b' is not pulled .* run `ollama pull gemma3:4b`"):
        resolve_base("gemma3:4b", cache_dir=tmp_path, ollama_models=tmp_path)


@pytest.mark.train
@pytest.mark.integration
def test_llama_export_lora_merges_the_adapter_into_the_base(exported: Exported, tmp_path: Path) -> None:
    """The merged GGUF holds W + (alpha / r) * B @ A for every adapted weight (the output is F16)."""
    from gguf import GGUFReader

    from benchsel.train.export import merge_gguf

    merged = merge_gguf(exported.base_gguf, exported.adapter_gguf, tmp_path / "merged.gguf")
    base, adapter, out = (
        {t.name: np.asarray(t.data, dtype=np.float32) for t in GGUFReader(path).tensors}
        for path in (exported.base_gguf, exported.adapter_gguf, merged)
    )
    assert set(out) == set(base)
    scale = 16 / 8  # alpha / r of the fixture's adapter
    for name in ("blk.0.attn_q.weight", "blk.1.attn_v.weight", "blk.0.ffn_down.weight"):
        expected = base[name] + scale * adapter[f"{name}.lora_b"] @ adapter[f"{name}.lora_a"]
        assert not np.allclose(expected, base[name], atol=1e-4)  # the adapter moved the weight
        np.testing.assert_allclose(out[name], expected, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(out["token_embd.weight"], base["token_embd.weight"], rtol=1e-3, atol=1e-5)


@pytest.mark.integration  # runs llama.cpp's llama-export-lora
def test_merge_failure_names_the_fix(tmp_path: Path) -> None:
    from benchsel.errors import UsageError
    from benchsel.train.export import merge_gguf

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf")
    with pytest.raises(UsageError, match="llama-export-lora could not merge .*--register-mode adapter"):
        merge_gguf(broken, broken, tmp_path / "merged.gguf")
    assert not (tmp_path / "merged.gguf").exists()
