"""Model metadata (Ollama /api/show model_info) of the motivating case's models, shared by the
VRAM and selection tests."""

GEMMA3_4B = {
    "general.architecture": "gemma3",
    "gemma3.block_count": 34,
    "gemma3.context_length": 131072,
    "gemma3.embedding_length": 2560,
    "gemma3.attention.head_count": 8,
    "gemma3.attention.head_count_kv": 4,
    "gemma3.attention.key_length": 256,
    "gemma3.attention.value_length": 256,
    "gemma3.attention.sliding_window": 1024,
    "gemma3.feed_forward_length": 10240,
    "gemma3.vocab_size": 262144,
}
# gemma4:e2b's model_info was not available here: Gemma 3n E2B's published shape stands in for it
# (30 layers, 4 of 5 sliding, the last 10 layers reuse earlier KV).
E2B_STAND_IN = {
    "general.architecture": "gemma3n",
    "gemma3n.block_count": 30,
    "gemma3n.context_length": 32768,
    "gemma3n.embedding_length": 2048,
    "gemma3n.attention.head_count": 8,
    "gemma3n.attention.head_count_kv": 2,
    "gemma3n.attention.key_length": 256,
    "gemma3n.attention.value_length": 256,
    "gemma3n.attention.sliding_window": 512,
    "gemma3n.attention.sliding_window_pattern": [True, True, True, True, False] * 6,
    "gemma3n.attention.shared_kv_layers": 10,
    "gemma3n.feed_forward_length": 8192,
    "gemma3n.vocab_size": 262144,
}
