"""The two training stages by name: their config class (medgen's ``SFTConfig`` / ``GRPOConfig``) and their run.

Everything that picks a stage by name (the `train` commands, ``--dry-run``, the demo, the GPU benchmark)
asks here; the trainers' modules are imported only when a stage is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

Stage = Literal["sft", "grpo"]
STAGES: tuple[Stage, ...] = ("sft", "grpo")


def config_class(stage: Stage) -> Any:  # -> type[SFTConfig] | type[GRPOConfig]
    """The config class of ``stage``: TRL's config with medgen's fields."""
    if stage == "sft":
        from training.sft_config import SFTConfig

        return SFTConfig
    from training.grpo_config import GRPOConfig

    return GRPOConfig


def train(stage: Stage, config: Any, resume: bool = False, **given: Any) -> Path:
    """Run ``stage`` with ``config``; returns the folder of the trained model.

    ``given``: what the stage's trainer takes besides (a loaded ``dataset``, ``model`` or ``processor``,
    ``callbacks``, ``save``; see ``training.sft.train_sft``).
    """
    if stage == "sft":
        from training.sft import train_sft

        return train_sft(config, resume=resume, **given)
    from training.grpo import train_grpo

    return train_grpo(config, resume=resume, **given)
