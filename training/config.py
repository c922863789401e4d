"""What SFT and GRPO configs share: medgen's dataset/model/LoRA fields and the YAML recipe loader.

A recipe is an open-r1 style YAML file, ``training/recipes/<model>/<stage>/config.yaml`` (variants:
``config_<variant>.yaml``), holding any field of the stage's config class. ``--recipe`` takes a path
to such a file or a short name: ``qwen2.5-vl-3b`` or ``qwen2.5-vl-7b/lora``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from medgen.errors import MedgenError, one_line
from medgen.files import atomic_write_text
from medgen.inference.checkpoint import TRAINED_CONFIG

RECIPES_DIR = Path(__file__).parent / "recipes"
RESOLVED_CONFIG_NAME = TRAINED_CONFIG  # what inference reads a checkpoint's training bounds from
# Qwen2.5-VL's language-model projections, not the vision tower's (which shares some names).
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

C = TypeVar("C")


@dataclass
class MedgenArguments:
    """Fields medgen adds to TRL's ``SFTConfig`` / ``GRPOConfig``."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Export folder written by `medgen export`, or a Hub dataset id (see dataset_revision)."
        },
    )
    dataset_revision: str | None = field(
        default=None,
        metadata={"help": "Hub tag, branch or commit of the dataset, e.g. a published version 'v1.0'."},
    )
    dataset_split: str = field(
        default="train", metadata={"help": "Split to train on: train, validation or test."}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Hub id or local folder of the vision-language model to start from."}
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of the model."})
    dtype: str = field(
        default="auto", metadata={"help": "Weights dtype: auto (as saved), bfloat16, float16 or float32."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel: sdpa, eager or flash_attention_2 (None: library default)."},
    )
    image_min_pixels: int | None = field(
        default=None,
        metadata={"help": "Resize images to at least this many pixels (None: the processor's default)."},
    )
    image_max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Resize images to at most this many pixels; caps image tokens (5 images per sample)."
        },
    )
    preload_images: bool = field(
        default=False,
        metadata={
            "help": "Decode every image once and keep it, resized to the processor's bounds, in memory "
            "(small datasets: saves decoding full-size PNGs at every step)."
        },
    )
    augment_images: bool = field(
        default=False,
        metadata={
            "help": "Each time a row is read, its five images get one random change together: mirrored or not, one "
            "brightness, contrast, saturation and hue shift. The labels are relations between the candidates and "
            "the original, so a change all five share keeps the answer; a source's exact pixels stop being "
            "something to memorise."
        },
    )
    answer_boxes: bool = field(
        default=False,
        metadata={
            "help": "The answer variant with boxes: each dimension question also asks where the answered images' "
            "defects are (<boxes>B (120,300,550,800)</boxes> after </answer>); SFT learns the export's regions, "
            "GRPO adds the localisation reward. Needs an export with regions."
        },
    )
    freeze_vision_tower: bool = field(
        default=True,
        metadata={"help": "Keep the vision encoder frozen; train the merger and language model."},
    )
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: str = field(
        default=DEFAULT_LORA_TARGETS,
        metadata={
            "help": "Regex of module names that get adapters (default: the language model's projections)."
        },
    )

    def check_medgen_fields(self) -> None:
        """Fix-it errors for medgen's fields; called by each config's ``__post_init__``."""
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise MedgenError(f"dtype must be auto, bfloat16, float16 or float32, got {self.dtype!r}")
        if self.dataset_split not in ("train", "validation", "test"):
            raise MedgenError(f"dataset_split must be train, validation or test, got {self.dataset_split!r}")
        if self.use_peft and self.lora_r <= 0:
            raise MedgenError(f"lora_r must be positive, got {self.lora_r}")
        deepspeed = getattr(self, "deepspeed", None) or os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true"
        if not self.use_peft and self.dtype in ("bfloat16", "float16") and not deepspeed:
            # Without DeepSpeed nobody keeps an fp32 master copy: updates of ~1e-6 round to nothing in bf16.
            raise MedgenError(
                f"full fine-tuning with dtype {self.dtype} loses AdamW's small updates (no fp32 master weights): "
                "use dtype: float32 with bf16: true (autocast), a LoRA recipe (use_peft: true), or DeepSpeed ZeRO"
            )


def resolve_recipe(recipe: str | Path, stage: str) -> Path:
    """Path of a recipe given as a YAML path or a short name (``<model>`` or ``<model>/<variant>``)."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise MedgenError(f"recipe file {path} does not exist")
        return path
    model, _, variant = str(recipe).partition("/")
    path = RECIPES_DIR / model / stage / (f"config_{variant}.yaml" if variant else "config.yaml")
    if not path.is_file():
        known = sorted(
            p.parent.parent.name + ("/" + p.stem.removeprefix("config_") if p.stem != "config" else "")
            for p in RECIPES_DIR.glob(f"*/{stage}/config*.yaml")
        )
        raise MedgenError(
            f"no {stage} recipe {recipe!r}; known: {', '.join(known)} (or pass a YAML file path)"
        )
    return path


def config_fields(config_class: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class) if f.init}


def check_keys(values: dict[str, Any], config_class: type, origin: str) -> None:
    """Refuse keys the config class does not define, suggesting the closest known ones."""
    known = config_fields(config_class)
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MedgenError(f"{origin}: unknown key {key!r}{hint}")


def load_config(
    config_class: type[C], recipe: str | Path, stage: str, overrides: dict[str, Any] | None = None
) -> C:
    """Build ``config_class`` from a recipe, then ``overrides`` (CLI options; None values are ignored)."""
    path = resolve_recipe(recipe, stage)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise MedgenError(f"recipe {path} is not valid YAML: {one_line(error)}") from None
    if not isinstance(values, dict):
        raise MedgenError(f"recipe {path} must be a mapping of config keys to values")
    check_keys(values, config_class, f"recipe {path}")
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    check_keys(overrides, config_class, "override")
    values.update(overrides)
    try:
        with warnings.catch_warnings():
            # TRL's defaults set `gradient_checkpointing`, which transformers 5 renames: not the user's doing.
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
            return config_class(**values)
    except (TypeError, ValueError) as error:
        raise MedgenError(f"recipe {path}: {one_line(error)}") from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values parsed as YAML: numbers, booleans, lists) to a dict."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MedgenError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = _number_or_value(yaml.safe_load(value))
    return overrides


def _number_or_value(value: Any) -> Any:
    """YAML 1.1 reads ``2e-5`` (no dot) as a string: such a value is the number it spells."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", value.strip()) else value
    except ValueError:
        return value


def save_resolved_config(config: Any, output_dir: str | Path) -> Path:
    """Write every field of ``config`` as a YAML recipe beside the run's outputs (tokens redacted)."""
    derived = set(getattr(config, "DERIVED_FIELDS", ()))  # computed in __post_init__: reloading would clash
    values = {
        key: value
        for key, value in config.to_dict().items()
        if key in config_fields(type(config)) and key not in derived
    }
    values = {key: (None if key.endswith("_token") else value) for key, value in values.items()}
    path = Path(output_dir) / RESOLVED_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=True))
    return path
