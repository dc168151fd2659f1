"""Chat templates benchsel supplies itself: one copy, so the template a model is trained with
(train/data.py) and the one it is served with (backends/demo.py) cannot drift apart."""

from __future__ import annotations

__all__ = ["GEMMA_TURN_TEMPLATE"]

# Gemma's turn format, for Gemma bases whose GGUF or tokenizer carries no template. The system prompt
# joins the first user turn, as Gemma's own instruction-tuned template does.
GEMMA_TURN_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '')"
    " + (message['content'] | trim) + '<end_of_turn>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)
