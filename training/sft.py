"""Stage 1: supervised fine-tuning on the reference chain of thought ``<think>...</think><answer>...</answer>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.data import SFT_COLUMNS, check_columns, load_split, preload_images
from training.model import check_vlm, load_model, load_processor, lora_config
from training.run import finish_run, start_run
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
    if dataset is None:
        dataset = load_split(config.dataset, config.dataset_split, config.dataset_revision)
    check_columns(dataset, SFT_COLUMNS, config.dataset or "given")
    if model is None:
        check_vlm(config.model_name_or_path, config.model_revision)
    checkpoint = start_run(config, resume)

    from trl import SFTTrainer

    processor = processor or load_processor(config)
    if config.preload_images:
        dataset = preload_images(dataset, processor.image_processor)
    trainer = SFTTrainer(
        model=model if model is not None else load_model(config),
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    if not save:  # a benchmark measuring steps: nothing to keep
        return Path(config.output_dir)
    return finish_run(trainer, config, processor)
