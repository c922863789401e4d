"""Start and finish of a training run, shared by SFT and GRPO: resume point, saved model and config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medgen.errors import MedgenError
from training.config import save_resolved_config


def start_run(config: Any, resume: bool) -> str | None:
    """Save the resolved config beside the outputs; return the checkpoint to resume from (None: fresh run)."""
    checkpoint = last_checkpoint(config.output_dir) if resume else None
    if config.process_index == 0:
        save_resolved_config(config, config.output_dir)
    return checkpoint


def last_checkpoint(output_dir: str) -> str:
    """The last ``checkpoint-N`` folder in ``output_dir``."""
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if checkpoint is None:
        raise MedgenError(
            f"nothing to resume: no checkpoint-* folder in {output_dir} (drop --resume to start fresh)"
        )
    return checkpoint


def finish_run(trainer: Any, config: Any, processor: Any) -> Path:
    """Save the final model and its processor beside the resolved config."""
    output_dir = Path(config.output_dir)
    trainer.save_model(str(output_dir))
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()
    return output_dir
