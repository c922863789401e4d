"""Start and finish of a training run, shared by SFT and GRPO: resume point, saved model and config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medgen.errors import MedgenError
from training.config import save_resolved_config

TRAINER_STATE = "trainer_state.json"
"""transformers' record of a finished run beside its model: ``log_history`` holds the logged curves."""


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
        trainer.state.save_to_json(str(output_dir / TRAINER_STATE))  # the logged loss/reward curve
    trainer.accelerator.wait_for_everyone()
    return output_dir


def logged_curve(run_dir: str | Path, key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``key`` ("loss", "reward", ...) as logged during the run saved in ``run_dir``."""
    import json

    path = Path(run_dir) / TRAINER_STATE
    if not path.is_file():
        return []
    history = json.loads(path.read_text()).get("log_history", [])
    return [(int(entry["step"]), float(entry[key])) for entry in history if key in entry and "step" in entry]


def sparkline(values: list[float], width: int = 40) -> str:
    """A one-line text chart of ``values`` (averaged into at most ``width`` bars)."""
    if not values:
        return ""
    bars = "▁▂▃▄▅▆▇█"
    size = max(1, -(-len(values) // width))
    means = [sum(chunk) / len(chunk) for chunk in (values[i : i + size] for i in range(0, len(values), size))]
    low, high = min(means), max(means)
    span = (high - low) or 1.0
    return "".join(bars[min(len(bars) - 1, int((v - low) / span * len(bars)))] for v in means)
