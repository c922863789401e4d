"""The vision-language model to train: loaded through ``medgen.inference.checkpoint`` (fix-it errors before
any weights load), its vision tower frozen if asked, LoRA settings for peft."""

from __future__ import annotations

from typing import Any

from medgen.errors import MedgenError
from medgen.inference import checkpoint
from medgen.inference.checkpoint import check_vlm
from training.config import MedgenArguments

__all__ = ["check_vlm", "freeze_vision_tower", "load_model", "load_processor", "lora_config"]


def load_processor(config: MedgenArguments) -> Any:  # -> transformers.ProcessorMixin
    """The processor of the model to train, with the config's image size bounds."""
    return checkpoint.load_processor(
        config.model_name_or_path, config.model_revision, config.image_min_pixels, config.image_max_pixels
    )


def load_model(config: MedgenArguments) -> Any:  # -> transformers.PreTrainedModel
    """The model to train in the config's dtype (a LoRA adapter folder merged), vision tower frozen if asked."""
    model = checkpoint.load_model(
        config.model_name_or_path, config.model_revision, config.dtype, config.attn_implementation
    )
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
