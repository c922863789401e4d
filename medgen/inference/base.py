"""What answers questions: the ``AnsweringModel`` protocol, and the one function that picks an implementation.

Two implementations: ``medgen.inference.checkpoint.CheckpointModel`` (a transformers checkpoint) and
``medgen.inference.endpoint.EndpointClient`` (any OpenAI-compatible chat-completions API). Evaluation,
screening and the teacher of `medgen cot` all ask through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from medgen.inference.config import InferenceConfig


class Asked(Protocol):
    """A question as a model is asked it: an id (for the cache), the prompt turn, and its images in order."""

    id: str
    prompt: list[dict[str, Any]]

    @property
    def images(self) -> Sequence[Any]: ...


class AnsweringModel(Protocol):
    """Turns questions into answer texts."""

    def details(self) -> dict[str, Any]:
        """What answers (model, revision, decoding...), recorded with the results; never a secret."""
        ...

    def generate(self, questions: Sequence[Asked]) -> Iterable[tuple[Asked, str]]:
        """(question, raw answer text) pairs, in any order, as they complete."""
        ...


def answering_model(config: InferenceConfig) -> AnsweringModel:
    """The OpenAI-compatible endpoint ``config.endpoint`` when set, else the checkpoint ``config.model``."""
    if config.endpoint:
        from medgen.inference.endpoint import EndpointClient, EndpointConfig

        return EndpointClient(
            EndpointConfig(
                url=config.endpoint,
                model=config.model or "",
                max_tokens=config.max_new_tokens,
                temperature=config.temperature or 0.0,
                concurrency=config.concurrency,
                max_retries=config.max_retries,
                timeout_s=config.timeout_s,
            )
        )
    from medgen.inference.checkpoint import CheckpointModel

    return CheckpointModel(config)
