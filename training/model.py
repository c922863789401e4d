"""Load the vision-language model to train or evaluate, with fix-it errors before any weights load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medgen.errors import MedgenError
from training.config import MedgenArguments

ADAPTER_CONFIG = "adapter_config.json"


def base_model_path(model: str) -> str:
    """The full model under ``model``: itself, or the base model of a LoRA adapter folder."""
    adapter = Path(model) / ADAPTER_CONFIG
    if adapter.is_file():
        return json.loads(adapter.read_text())["base_model_name_or_path"]
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
        raise MedgenError(f"cannot read the config of model {model}: {str(error).splitlines()[0]}") from None
    if getattr(config, "vision_config", None) is None:
        architectures = ", ".join(config.architectures or [config.model_type])
        raise MedgenError(
            f"model {model} ({architectures}) is not a vision-language model: it has no vision_config"
        )


def load_processor(config: MedgenArguments) -> Any:  # -> transformers.ProcessorMixin
    """The model's processor (tokenizer + image processor), with the config's image size bounds."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(
        base_model_path(config.model_name_or_path), revision=config.model_revision
    )
    if not hasattr(processor, "image_processor"):
        raise MedgenError(
            f"model {config.model_name_or_path} has no image processor (AutoProcessor gave "
            f"{type(processor).__name__}): save the full processor with the model"
        )
    size = dict(processor.image_processor.size)
    if config.image_min_pixels is not None:
        size["shortest_edge"] = config.image_min_pixels
    if config.image_max_pixels is not None:
        size["longest_edge"] = config.image_max_pixels
    processor.image_processor.size = size
    return processor


def load_model(config: MedgenArguments) -> Any:  # -> transformers.PreTrainedModel
    """The model in the config's dtype, a LoRA adapter folder merged into its base, vision tower frozen if asked."""
    import torch
    from transformers import AutoModelForImageTextToText

    path = config.model_name_or_path
    dtype = config.dtype if config.dtype == "auto" else getattr(torch, config.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, "revision": config.model_revision}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(base_model_path(path), **kwargs)
    if (Path(path) / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    if config.freeze_vision_tower:
        freeze_vision_tower(model)
    return model


def freeze_vision_tower(model: Any) -> None:
    """Freeze the vision encoder; its merger/projector into the language model stays trainable."""
    inner = getattr(model, "model", model)
    tower = getattr(inner, "visual", None) or getattr(inner, "vision_tower", None)
    if tower is None:
        raise MedgenError(
            f"freeze_vision_tower: {type(model).__name__} has no visual/vision_tower module; set it false"
        )
    for name, parameter in tower.named_parameters():
        if not name.startswith("merger"):
            parameter.requires_grad = False


def lora_config(config: MedgenArguments) -> Any:  # -> peft.LoraConfig | None
    if not config.use_peft:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )
