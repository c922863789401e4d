"""The model that answers, as an ``InferenceConfig`` names it."""

from __future__ import annotations

from medgen.inference.base import AnsweringModel
from medgen.inference.config import InferenceConfig


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
