"""Stage 1: supervised fine-tuning on the reference chain of thought ``<think>...</think><answer>...</answer>``."""

from __future__ import annotations

from pathlib import Path

from training.data import SFT_COLUMNS, check_columns, load_split, preload_images
from training.model import check_vlm, load_model, load_processor, lora_config
from training.run import finish_run, start_run
from training.sft_config import SFTConfig


def train_sft(config: SFTConfig, resume: bool = False) -> Path:
    """Fine-tune ``config.model_name_or_path`` on the split's ``prompt``/``completion``/``images``; returns the output folder."""
    dataset = load_split(config.dataset, config.dataset_split, config.dataset_revision)
    check_columns(dataset, SFT_COLUMNS, config.dataset)
    check_vlm(config.model_name_or_path, config.model_revision)
    checkpoint = start_run(config, resume)

    from trl import SFTTrainer

    processor = load_processor(config)
    if config.preload_images:
        dataset = preload_images(dataset, processor.image_processor)
    trainer = SFTTrainer(
        model=load_model(config),
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    return finish_run(trainer, config, processor)
