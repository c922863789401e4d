"""Stage 2: GRPO with the DPA accuracy reward (partial credit decaying with progress) and the format reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training import rewards
from training.data import GRPO_COLUMNS, check_columns, load_split
from training.grpo_config import GRPOConfig
from training.model import check_vlm, load_model, load_processor, lora_config
from training.run import finish_run, start_run


def reward_functions(config: GRPOConfig) -> list[Any]:
    """The rewards, in the order of ``config.reward_weights``: DPA accuracy, then format."""
    return [rewards.make_dpa_accuracy(config.dpa_lambda0, config.dpa_schedule), rewards.format_reward]


def train_grpo(config: GRPOConfig, resume: bool = False) -> Path:
    """GRPO from ``config.model_name_or_path`` (default: the SFT output) on the split; returns the output folder."""
    dataset = load_split(config.dataset, config.dataset_split, config.dataset_revision)
    check_columns(dataset, GRPO_COLUMNS, config.dataset)
    check_vlm(config.model_name_or_path, config.model_revision)
    checkpoint = start_run(config, resume)

    from trl import GRPOTrainer

    processor = load_processor(config)
    trainer = GRPOTrainer(
        model=load_model(config),
        reward_funcs=reward_functions(config),
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    return finish_run(trainer, config, processor)
