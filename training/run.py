"""Start and finish of a training run, shared by SFT and GRPO: resume point, saved model and config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgen.errors import MedgenError
from training.config import save_resolved_config

TRAINER_STATE = "trainer_state.json"
"""transformers' record of a finished run beside its model: ``log_history`` holds the logged curves."""
TRAIN_LOG = "train_log.jsonl"
"""The trainer's log lines (loss, reward, grad norm, ...), one JSON object per logging step, as they come."""


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


@dataclass
class RunInputs:
    """What a trainer is built from, checked and loaded once for SFT and GRPO alike."""

    dataset: Any
    model: Any
    processor: Any
    checkpoint: str | None  # where to resume from (None: a fresh run)


def prepare_run(
    config: Any,
    columns: tuple[str, ...],
    resume: bool,
    dataset: Any = None,
    model: Any = None,
    processor: Any = None,
) -> RunInputs:
    """The split (checked for ``columns``), model and processor, each unless given; config saved; resume point.

    Checks that cost no weights come first: a bad dataset or model path fails before anything loads.
    """
    from training.data import (
        check_columns,
        load_split,
        preload_images,
        with_answer_boxes,
        with_candidate_orders,
        with_shared_changes,
    )
    from training.model import check_vlm, load_model, load_processor

    if dataset is None:
        dataset = load_split(config.dataset, config.dataset_split, config.dataset_revision)
    check_columns(dataset, columns, config.dataset or "given")
    dataset = with_candidate_orders(dataset, getattr(config, "candidate_orders", 1), config.seed)
    if config.answer_boxes:
        dataset = with_answer_boxes(dataset)
    if model is None:
        check_vlm(config.model_name_or_path, config.model_revision)
    checkpoint = start_run(config, resume)
    processor = processor or load_processor(config)
    if config.preload_images:
        dataset = preload_images(dataset, processor.image_processor)
    if config.augment_images:
        dataset = with_shared_changes(dataset, config.seed)
    model = model if model is not None else load_model(config)
    return RunInputs(dataset, model, processor, checkpoint)


def train_and_finish(trainer: Any, config: Any, inputs: RunInputs, save: bool = True) -> Path:
    """Train (resuming when asked), then save the model beside its config unless ``save`` is False.

    The terminal shows the progress bar (with the last loss or reward); the log lines go to ``TRAIN_LOG``
    in the output folder, not between the bar's updates.
    """
    log_to_file(trainer, Path(config.output_dir) / TRAIN_LOG)
    trainer.train(resume_from_checkpoint=inputs.checkpoint)
    if not save:  # a benchmark measuring steps: nothing to keep
        return Path(config.output_dir)
    return finish_run(trainer, config, inputs.processor)


def finish_run(trainer: Any, config: Any, processor: Any) -> Path:
    """Save the final model and its processor beside the resolved config."""
    output_dir = Path(config.output_dir)
    trainer.save_model(str(output_dir))
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(output_dir)
        trainer.state.save_to_json(str(output_dir / TRAINER_STATE))  # the logged loss/reward curve
    trainer.accelerator.wait_for_everyone()
    return output_dir


def log_to_file(trainer: Any, path: Path) -> None:
    """Swap the trainer's log printing for a file: the progress bar stays, showing the last loss or reward."""
    import json

    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class LogFile(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if state.is_world_process_zero and logs:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps({"step": state.global_step, **logs}, default=str) + "\n")

    class BarOnly(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            shown = {k: f"{v:.4g}" for k, v in (logs or {}).items() if k in ("loss", "reward")}
            if state.is_world_process_zero and self.training_bar is not None and shown:
                self.training_bar.set_postfix(shown, refresh=False)

    had_bar = trainer.pop_callback(ProgressCallback) is not None
    trainer.pop_callback(PrinterCallback)  # disable_tqdm: the bar is gone, and so are the printed dicts
    if had_bar:
        trainer.add_callback(BarOnly())
    trainer.add_callback(LogFile())


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
