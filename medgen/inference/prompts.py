"""The benchmark prompt in the model's chat format: one builder shared by SFT, GRPO and evaluation.

The text itself (question, image labels, answer format, reference chain of thought) comes from
``schemas.prompts``; this module turns a dataset row into model inputs and generated ids back into text.
"""

from __future__ import annotations

from typing import Any

from schemas.prompts import (
    ANSWER_INSTRUCTIONS,
    completion_messages,
    prompt_messages,
    question_text,
    rationale_text,
)

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "chat_prompt",
    "completion_messages",
    "decode_completions",
    "generation_inputs",
    "prompt_messages",
    "question_text",
    "rationale_text",
]


def chat_prompt(processor: Any, prompt: list[dict[str, Any]]) -> str:
    """The conversational user turn rendered by the model's chat template, ending with the assistant header."""
    return processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def generation_inputs(processor: Any, rows: list[dict[str, Any]]) -> Any:  # -> transformers.BatchFeature
    """Left-padded model inputs for a batch of dataset rows (``prompt`` + five ``images`` each)."""
    texts = [chat_prompt(processor, row["prompt"]) for row in rows]
    images = [[image.convert("RGB") for image in row["images"]] for row in rows]
    return processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")


def decode_completions(processor: Any, output_ids: Any, prompt_length: int) -> list[str]:
    """Generated text after the prompt, special tokens removed."""
    return processor.batch_decode(output_ids[:, prompt_length:], skip_special_tokens=True)
