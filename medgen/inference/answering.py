"""The model that answers, as an ``InferenceConfig`` names it."""

from __future__ import annotations

from medgen.inference.base import AnsweringModel
from medgen.inference.config import InferenceConfig


def answering_model(config: InferenceConfig) -> AnsweringModel:
    """The OpenAI-compatible endpoint ``config.endpoint`` when set, else the checkpoint ``config.model``."""
    if config.endpoint:
        from medgen.inference.endpoint import EndpointClient

        return EndpointClient(config)
    from medgen.inference.checkpoint import CheckpointModel

    return CheckpointModel(config)
