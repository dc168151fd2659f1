"""A tiny, randomly initialised Llama with a BPE tokenizer trained on the fly: for tests and demos."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from benchsel.errors import MissingExtra

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

_NAMES = (
    "Docker",
    "Kubernetes cluster",
    "DevOps team",
    "Postgres",
    "API gateway",
    "Alice",
    "Acme Corp",
    "billing service",
    "Redis cache",
    "Berlin",
    "data team",
    "Kafka",
)
_RELATIONS = ("DEPLOYED_ON", "MANAGES", "USES", "WORKS_FOR", "LOCATED_IN", "DEPENDS_ON", "OWNS")


def extraction_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Deterministic JSON-ish extraction text: a sentence and the knowledge-graph answer for it."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        source, target = rng.sample(_NAMES, 2)
        relation = rng.choice(_RELATIONS)
        text = f"The {source} {relation.lower().replace('_', ' ')} the {target}."
        answer = {
            "entities": [{"name": source, "role": "subject"}, {"name": target, "role": "object"}],
            "relationships": [{"source": source, "relation": relation, "target": target}],
        }
        lines.append(f"Extract entities and relationships as JSON.\n{text}\n{json.dumps(answer)}")
    return lines


def build_tiny_tokenizer(vocab_size: int = 512, seed: int = 0) -> object:
    """A byte-level BPE tokenizer (GPT-2 style) with a ChatML template, as a PreTrainedTokenizerFast."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:
        raise MissingExtra("training", "train") from exc
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(extraction_corpus(seed=seed), trainer=trainer)
    # its constructor carries no annotations (transformers 5): typed here, where benchsel calls it
    wrap: Callable[..., PreTrainedTokenizerFast] = PreTrainedTokenizerFast
    fast = wrap(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_llama(
    directory: Path,
    *,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
    initializer_range: float = 0.02,
) -> Path:
    """Save a random LlamaForCausalLM and its tokenizer to ``directory``; a seed gives the same files."""
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as exc:
        raise MissingExtra("training", "train") from exc
    tokenizer = build_tiny_tokenizer(vocab_size, seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        initializer_range=initializer_range,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)  # type: ignore[attr-defined]
    return directory
