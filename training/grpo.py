"""Stage 2: GRPO with the DPA accuracy reward (partial credit decaying with progress) and the format reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training import rewards
from training.data import GRPO_COLUMNS, check_columns, load_split, preload_images
from training.grpo_config import GRPOConfig
from training.model import check_vlm, load_model, load_processor, lora_config
from training.run import finish_run, start_run


def reward_functions(config: GRPOConfig) -> list[Any]:
    """The rewards, in the order of ``config.reward_weights``: DPA accuracy, then format."""
    return [rewards.make_dpa_accuracy(config.dpa_lambda0, config.dpa_schedule), rewards.format_reward]


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
    if dataset is None:
        dataset = load_split(config.dataset, config.dataset_split, config.dataset_revision)
    check_columns(dataset, GRPO_COLUMNS, config.dataset or "given")
    if model is None:
        check_vlm(config.model_name_or_path, config.model_revision)
    checkpoint = start_run(config, resume)

    from trl import GRPOTrainer

    processor = processor or load_processor(config)
    if config.preload_images:
        dataset = preload_images(dataset, processor.image_processor)
    model = model if model is not None else load_model(config)
    vllm_start_folder(model, processor, config)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(config),
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
