"""A transformers vision-language checkpoint answering the benchmark's questions, and how it is loaded.

The loaders serve training too (``training.run`` loads the model it fine-tunes through them): one place
refuses a missing or text-only model before any weights load, reads a LoRA adapter folder's base model,
and bounds the images the processor makes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medgen.errors import MedgenError, one_line
from medgen.inference.base import Asked
from medgen.inference.config import InferenceConfig

ADAPTER_CONFIG = "adapter_config.json"
TRAINED_CONFIG = "train_config.yaml"
"""The resolved config a medgen training run saves beside its model (``training.config``)."""
RECIPE_IMAGE_MAX_PIXELS = 200704
"""448x448, the bound of the shipped recipes: 256 tokens per image instead of the processor's default
(a 1024x1024 candidate would cost 1,369)."""


def base_model_path(model: str) -> str:
    """The full model under ``model``: itself, or the base model of a LoRA adapter folder."""
    adapter = Path(model) / ADAPTER_CONFIG
    if adapter.is_file():
        return str(json.loads(adapter.read_text())["base_model_name_or_path"])
    return model


def check_vlm(model: str, revision: str | None = None) -> None:
    """Refuse a model that is missing or has no vision tower, reading only its config."""
    from transformers import AutoConfig

    local = Path(model)
    if (local.is_absolute() or model.startswith(".")) and not local.exists():
        raise MedgenError(
            f"model folder {model} does not exist (run `medgen train sft` first, or pass --model)"
        )
    try:
        config = AutoConfig.from_pretrained(base_model_path(model), revision=revision)
    except (OSError, ValueError) as error:
        raise MedgenError(f"cannot read the config of model {model}: {one_line(error)}") from None
    if getattr(config, "vision_config", None) is None:
        architectures = ", ".join(config.architectures or [config.model_type])
        raise MedgenError(
            f"model {model} ({architectures}) is not a vision-language model: it has no vision_config"
        )


def load_processor(
    model: str, revision: str | None = None, min_pixels: int | None = None, max_pixels: int | None = None
) -> Any:  # -> transformers.ProcessorMixin
    """The model's processor (tokenizer + image processor), its images bounded to ``min/max_pixels``."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(base_model_path(model), revision=revision)
    if not hasattr(processor, "image_processor"):
        raise MedgenError(
            f"model {model} has no image processor (AutoProcessor gave {type(processor).__name__}): save "
            "the full processor with the model"
        )
    size = dict(processor.image_processor.size)
    if min_pixels is not None:
        size["shortest_edge"] = min_pixels
    if max_pixels is not None:
        size["longest_edge"] = max_pixels
    processor.image_processor.size = size
    return processor


def load_model(
    model: str, revision: str | None = None, dtype: str = "auto", attn_implementation: str | None = None
) -> Any:  # -> transformers.PreTrainedModel
    """The model in ``dtype`` ("auto": as saved); a LoRA adapter folder is merged into its base."""
    import torch
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {
        "dtype": dtype if dtype == "auto" else getattr(torch, dtype),
        "revision": revision,
    }
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    loaded = AutoModelForImageTextToText.from_pretrained(base_model_path(model), **kwargs)
    if (Path(model) / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(loaded, model).merge_and_unload()
    return loaded


def trained_setting(checkpoint: str, key: str) -> Any:
    """A setting a medgen run trained ``checkpoint`` with (its saved config), None when it does not say."""
    import yaml

    saved = Path(checkpoint) / TRAINED_CONFIG
    if not saved.is_file():
        return None
    return (yaml.safe_load(saved.read_text()) or {}).get(key)


def training_image_bound(checkpoint: str) -> int | None:
    """``image_max_pixels`` a medgen run trained ``checkpoint`` with (its saved config), if it says."""
    value = trained_setting(checkpoint, "image_max_pixels")
    return int(value) if value else None


def wants_boxes(config: InferenceConfig) -> bool:
    """Whether to ask for boxes: as configured, else as the checkpoint was trained (endpoints: no)."""
    if config.answer_boxes is not None:
        return config.answer_boxes
    return bool(config.model and not config.endpoint and trained_setting(config.model, "answer_boxes"))


class CheckpointModel:
    """A transformers vision-language checkpoint (Qwen2.5-VL class, or a LoRA adapter folder), answering in batches.

    Images are bounded to ``config.image_max_pixels``, else the bound the checkpoint was trained with,
    else the shipped recipes' 448x448.
    """

    def __init__(self, config: InferenceConfig):
        import torch

        source = config.model or ""
        check_vlm(source, config.model_revision)
        bound = config.image_max_pixels or training_image_bound(source) or RECIPE_IMAGE_MAX_PIXELS
        self.config = config.model_copy(update={"image_max_pixels": bound})
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = load_processor(source, config.model_revision, max_pixels=bound)
        self.model = load_model(source, config.model_revision, config.dtype).to(self.device).eval()

    def details(self) -> dict[str, Any]:
        c = self.config
        return {
            "checkpoint": c.model,
            "revision": c.model_revision,
            "class": type(self.model).__name__,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "decoding": "greedy" if not c.temperature else f"sampling, temperature {c.temperature:g}",
            "max_new_tokens": c.max_new_tokens,
            "image_max_pixels": c.image_max_pixels,
        }

    def generate(self, questions: Sequence[Asked]) -> Iterable[tuple[Asked, str]]:
        """(question, answer text) per question, ``batch_size`` questions per ``generate()`` call."""
        import torch

        from medgen.inference.prompts import decode_completions, generation_inputs

        c = self.config
        sampling = (
            {"do_sample": True, "temperature": c.temperature} if c.temperature else {"do_sample": False}
        )
        for start in range(0, len(questions), c.batch_size):
            batch = questions[start : start + c.batch_size]
            rows = [{"prompt": q.prompt, "images": q.images} for q in batch]
            inputs = generation_inputs(self.processor, rows).to(self.device)
            with torch.inference_mode():
                output = self.model.generate(**inputs, max_new_tokens=c.max_new_tokens, **sampling)
            answers = decode_completions(self.processor, output, inputs["input_ids"].shape[1])
            yield from zip(batch, answers, strict=True)
