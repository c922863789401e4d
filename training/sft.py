"""Stage 1: supervised fine-tuning on the reference chain of thought ``<think>...</think><answer>...</answer>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.data import SFT_COLUMNS
from training.model import lora_config
from training.run import prepare_run, train_and_finish
from training.sft_config import SFTConfig


def train_sft(
    config: SFTConfig,
    resume: bool = False,
    *,
    dataset: Any = None,
    model: Any = None,
    processor: Any = None,
    callbacks: list[Any] | None = None,
    save: bool = True,
) -> Path:
    """Fine-tune ``config.model_name_or_path`` on the split's ``prompt``/``completion``/``images``; returns the output folder.

    ``dataset``, ``model`` and ``processor`` replace what the config names (benchmarks pass random-weight
    full-size models and synthetic rows); ``callbacks`` go to the trainer; ``save=False`` keeps no model.
    """
    inputs = prepare_run(config, SFT_COLUMNS, resume, dataset, model, processor)

    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=inputs.model,
        args=config,
        train_dataset=inputs.dataset,
        processing_class=inputs.processor,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    return train_and_finish(trainer, config, inputs, save)
