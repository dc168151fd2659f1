"""Rendering examples with the base model's own chat template and tokenizer, the loss on the answer only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchsel.errors import UsageError
from benchsel.train.data.examples import Example

if TYPE_CHECKING:
    pass


IGNORE_INDEX = -100


def render_for_training(
    example: Example, tokenizer: Any, *, fallback_template: str | None = None
) -> dict[str, list[int]]:
    """Token ids of the whole conversation, with labels -100 on the prompt so the loss is on the answer.

    The prompt is the conversation up to the answer with the generation prompt added. When the
    template renders history differently once the answer follows (so the prompt is not a prefix of
    the whole), the whole is built as prompt + the answer with the template's closing markers.
    """
    template = None if getattr(tokenizer, "chat_template", None) else fallback_template
    if template is None and not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
        raise UsageError(
            f"{name} has no chat template (a base model?) - use an instruct model's tokenizer or pass "
            "fallback_template= (chat_templates.GEMMA_TURN_TEMPLATE gives Gemma's turn format)"
        )
    messages = [m.as_dict() for m in example.messages]
    prompt_text = _chat_text(tokenizer, messages[:-1], template, add_generation_prompt=True)
    full_text = _chat_text(tokenizer, messages, template, add_generation_prompt=False)
    prompt_ids = _encode(tokenizer, prompt_text)
    full_ids = _encode(tokenizer, full_text)
    if not (full_text.startswith(prompt_text) and full_ids[: len(prompt_ids)] == prompt_ids):
        full_ids = prompt_ids + _encode(tokenizer, _answer_with_closing(full_text, example.answer))
    labels = [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]
    return {"input_ids": full_ids, "labels": labels, "attention_mask": [1] * len(full_ids)}


def _chat_text(tokenizer: Any, messages: list[dict[str, str]], template: str | None, **kwargs: Any) -> str:
    text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **kwargs)
    if not isinstance(text, str):
        raise UsageError("the tokenizer's chat template did not render to text - check the template")
    return text


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _answer_with_closing(full_text: str, answer: str) -> str:
    at = full_text.rfind(answer.strip())
    return answer.strip() + full_text[at + len(answer.strip()) :] if at >= 0 else answer
