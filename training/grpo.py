"""Stage 2: GRPO with the DPA accuracy reward (partial credit decaying with progress) and the format reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training import rewards
from training.data import GRPO_COLUMNS
from training.grpo_config import GRPOConfig
from training.model import lora_config
from training.run import prepare_run, train_and_finish


def reward_functions(config: GRPOConfig) -> list[Any]:
    """The rewards, in the order of ``config.reward_weights``: DPA accuracy, format, and with ``answer_boxes``
    localisation (off otherwise: an export without regions has nothing to reward)."""
    functions = [rewards.make_dpa_accuracy(config.dpa_lambda0, config.dpa_schedule), rewards.format_reward]
    return [*functions, rewards.localisation_reward] if config.answer_boxes else functions


def vllm_start_folder(model: Any, processor: Any, config: Any) -> Path | None:
    """Where colocated vLLM starts from: the model and the processor with this run's image bounds.

    TRL's colocated vLLM loads the model and builds its own image processor from
    ``model.name_or_path``. For a Hub id, or an SFT LoRA folder merged here (whose name is the base
    id), that processor has the default image size, so vLLM's image placeholders would not match the
    trainer's. The model as loaded and the configured processor are saved once beside the run's
    outputs, and vLLM starts from them. (In server mode, start ``trl vllm-serve`` on this folder.)
    """
    if not getattr(config, "use_vllm", False) or getattr(config, "vllm_mode", "colocate") != "colocate":
        return None
    folder = Path(config.output_dir) / "vllm-start"
    if not (folder / "config.json").is_file():
        partial = folder.with_name(folder.name + ".partial")
        model.save_pretrained(partial)
        processor.save_pretrained(partial)
        partial.rename(folder)
    model.name_or_path = str(folder)
    model.config._name_or_path = str(folder)
    return folder


def train_grpo(
    config: GRPOConfig,
    resume: bool = False,
    *,
    dataset: Any = None,
    model: Any = None,
    processor: Any = None,
    callbacks: list[Any] | None = None,
    save: bool = True,
) -> Path:
    """GRPO from ``config.model_name_or_path`` (default: the SFT output) on the split; returns the output folder.

    ``dataset``, ``model``, ``processor`` and ``callbacks`` as in ``training.sft.train_sft``.
    """
    inputs = prepare_run(config, GRPO_COLUMNS, resume, dataset, model, processor)
    vllm_start_folder(inputs.model, inputs.processor, config)

    if config.hard_cases:
        from training.hard_cases import HardCaseGRPOTrainer as Trainer
    else:
        from trl import GRPOTrainer as Trainer

    trainer = Trainer(
        model=inputs.model,
        reward_funcs=reward_functions(config),
        args=config,
        train_dataset=inputs.dataset,
        processing_class=inputs.processor,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    return train_and_finish(trainer, config, inputs, save)
