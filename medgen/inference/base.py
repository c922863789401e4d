"""What answers questions: the ``AnsweringModel`` protocol (``medgen.inference.answering`` picks one).

Two implementations: ``medgen.inference.checkpoint.CheckpointModel`` (a transformers checkpoint) and
``medgen.inference.endpoint.EndpointClient`` (any OpenAI-compatible chat-completions API). Evaluation,
screening and the teacher of `medgen cot` all ask through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


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
