"""Will a recipe fit? Memory per GPU of a training plan, estimated before any weight is loaded.

``medgen train sft|grpo --dry-run`` prints the estimate and refuses a plan that does not fit,
naming a shipped recipe that does. The parameter counts are exact: the model is built on PyTorch's
``meta`` device from its config (a local folder's ``config.json``, or the architecture kept beside
the recipe, ``training/recipes/<model>/model_config.json``, for a Hub id: nothing is downloaded).
The rest is the usual accounting for mixed-precision AdamW training, per GPU:

- weights: parameters x bytes of ``dtype`` (divided by the GPU count under ZeRO-3);
- gradients: trainable parameters x bytes of their dtype (divided under ZeRO-2/3);
- optimizer: AdamW's two moments, 8 bytes per trainable fp32 parameter (divided under ZeRO-1/2/3);
  LoRA adapters are kept in fp32 by peft, so they count 4 + 4 + 8 bytes each;
- reference model (GRPO with ``beta`` > 0, full fine-tuning): a second copy of the weights;
- vLLM colocated: its ``vllm_gpu_memory_utilization`` share of the GPU;
- activations of ``per_device_train_batch_size`` sequences of five images (``image_max_pixels`` /
  28² tokens each), the prompt text and the completion: with gradient checkpointing one bf16 hidden
  state per layer plus one layer's internals, without it every layer's internals;
- logits: bf16 logits, their fp32 upcast and log-softmax over the vocabulary for the tokens scored
  (the whole sequence in SFT, the completion in GRPO);
- GRPO generation with transformers: the KV cache of a generation batch;
- CUDA context and allocator slack: 1.5 GiB plus 10 %.

It is an estimate, meant to tell 40 from 80 from 141 GB: ``benchmarks/gpu_recipes.py`` measures the
real peaks on a GPU and prints them beside these numbers.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgen.errors import MedgenError
from training.config import RECIPES_DIR

GIB = 1024**3
PROMPT_TEXT_TOKENS = 250  # the question, the image labels and the answer instructions (Qwen tokenizer)
SFT_COMPLETION_TOKENS = 400  # the reference reasoning and answer, with room to spare
IMAGES_PER_SAMPLE = 5
PIXELS_PER_TOKEN = 28 * 28  # Qwen2-VL: 14 px patches merged 2x2
CONTEXT_BYTES = int(1.5 * GIB)
SLACK = 0.10
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GPU_SIZES_GB = (24, 40, 80, 141)  # consumer, A100-40, A100/H100-80, H200


@dataclass
class Architecture:
    """What the estimate needs from a model config, with exact parameter counts."""

    name: str
    parameters: int
    vision_frozen_parameters: int  # the vision tower without its merger (frozen by freeze_vision_tower)
    hidden: int
    intermediate: int
    layers: int
    kv_width: int  # num_key_value_heads x head_dim
    vocab: int
    vision_hidden: int
    vision_layers: int
    torch_dtype: str
    lora_shapes: list[tuple[str, int, int]] = field(default_factory=list)  # (name, in, out) of linears


def _model_config(model: str, recipe_dir: Path | None) -> tuple[dict[str, Any], str]:
    """The config dict of ``model``: its local folder, else the architecture kept beside the recipe."""
    folder = Path(model)
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text()), str(folder / "config.json")
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        return _model_config(json.loads(adapter.read_text())["base_model_name_or_path"], recipe_dir)
    candidates = [recipe_dir / "model_config.json"] if recipe_dir else []
    candidates += sorted(RECIPES_DIR.glob("*/model_config.json"))
    for path in candidates:
        if path.is_file() and _names_model(path.parent, model):
            return json.loads(path.read_text()), str(path)
    if recipe_dir and (recipe_dir / "model_config.json").is_file():  # e.g. GRPO from runs/<model>/sft
        path = recipe_dir / "model_config.json"
        return json.loads(path.read_text()), str(path)
    raise MedgenError(
        f"cannot estimate memory for {model}: no config.json there and no recipe keeps its architecture; "
        "pass --model with a local model folder"
    )


def _names_model(recipe_model_dir: Path, model: str) -> bool:
    """Whether a recipe folder's recipes train ``model`` (a Hub id such as Qwen/Qwen2.5-VL-3B-Instruct)."""
    for path in recipe_model_dir.glob("*/config*.yaml"):
        if re.search(rf"^model_name_or_path:\s*{re.escape(model)}\s*$", path.read_text(), re.MULTILINE):
            return True
    return False


@functools.lru_cache(maxsize=16)
def architecture(model: str, recipe_dir: Path | None, lora_targets: str | None = None) -> Architecture:
    """Exact parameter counts from a model config built on the meta device (no weights, no download)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    values, origin = _model_config(model, recipe_dir)
    if Path(origin).is_relative_to(RECIPES_DIR.parent.parent):
        origin = str(Path(origin).relative_to(RECIPES_DIR.parent.parent))
    model_type = values.get("model_type")
    if not model_type:
        raise MedgenError(f"{origin} has no model_type")
    config = AutoConfig.for_model(**values)
    with torch.device("meta"):
        net = AutoModelForImageTextToText.from_config(config)
    text = config.get_text_config()
    vision = getattr(config, "vision_config", None)
    if vision is None:
        raise MedgenError(f"{origin}: {model_type} is not a vision-language model (no vision_config)")
    inner = getattr(net, "model", net)
    tower = getattr(inner, "visual", None) or getattr(inner, "vision_tower", None)
    frozen = sum(p.numel() for n, p in tower.named_parameters() if not n.startswith("merger")) if tower else 0
    shapes: list[tuple[str, int, int]] = []
    if lora_targets:
        pattern = re.compile(lora_targets)
        shapes = [
            (name, module.in_features, module.out_features)
            for name, module in net.named_modules()
            if isinstance(module, torch.nn.Linear) and pattern.fullmatch(name)
        ]
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return Architecture(
        name=origin,
        parameters=sum(p.numel() for p in net.parameters()),
        vision_frozen_parameters=frozen,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        layers=text.num_hidden_layers,
        kv_width=getattr(text, "num_key_value_heads", heads) * head_dim,
        vocab=text.vocab_size,
        vision_hidden=getattr(vision, "hidden_size", 0),
        vision_layers=getattr(vision, "depth", getattr(vision, "num_hidden_layers", 0)),
        torch_dtype=str(values.get("torch_dtype") or values.get("dtype") or "bfloat16"),
        lora_shapes=shapes,
    )


@dataclass
class Plan:
    """A training plan's memory per GPU, in bytes, by component."""

    recipe: str
    stage: str
    gpus: int
    zero: int
    gpu_bytes: int
    parts: dict[str, int]
    notes: list[str]

    @property
    def total(self) -> int:
        subtotal = sum(self.parts.values())
        return int(subtotal * (1 + SLACK)) + CONTEXT_BYTES

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu_bytes


def estimate(config: Any, stage: str, recipe: str, gpu_gb: float, gpus: int = 1, zero: int = 0) -> Plan:
    """Memory per GPU of training ``config`` (an SFTConfig or GRPOConfig) on ``gpus`` GPUs of ``gpu_gb`` GB."""
    if zero not in (0, 1, 2, 3):
        raise MedgenError(f"--zero must be 0, 1, 2 or 3, got {zero}")
    if gpus < 1:
        raise MedgenError(f"--gpus must be at least 1, got {gpus}")
    recipe_dir = _recipe_model_dir(recipe)
    arch = architecture(
        config.model_name_or_path, recipe_dir, config.lora_target_modules if config.use_peft else None
    )
    dtype = arch.torch_dtype if config.dtype == "auto" else config.dtype
    weight_bytes = DTYPE_BYTES.get(dtype.removeprefix("torch."), 2)
    notes: list[str] = []
    if config.use_peft:
        if not arch.lora_shapes:
            raise MedgenError(f"lora_target_modules {config.lora_target_modules!r} matches no linear layer")
        trainable = sum(config.lora_r * (fan_in + fan_out) for _, fan_in, fan_out in arch.lora_shapes)
        trainable_bytes = 4  # peft keeps adapters in fp32
        notes.append(
            f"LoRA r={config.lora_r} on {len(arch.lora_shapes)} linears: {trainable / 1e6:.0f}M trainable"
        )
    else:
        trainable = arch.parameters - (arch.vision_frozen_parameters if config.freeze_vision_tower else 0)
        trainable_bytes = weight_bytes
    shard_weights = gpus if zero == 3 else 1
    shard_grads = gpus if zero >= 2 else 1
    shard_optimizer = gpus if zero >= 1 else 1
    parts = {
        "weights": arch.parameters * weight_bytes // shard_weights,
        "gradients": trainable * trainable_bytes // shard_grads,
        "optimizer (AdamW)": trainable * 8 // shard_optimizer,
    }
    if stage == "grpo" and getattr(config, "beta", 0.0) > 0 and not config.use_peft:
        parts["reference model"] = arch.parameters * weight_bytes // shard_weights
    gpu_bytes = int(gpu_gb * 1e9)
    if stage == "grpo" and getattr(config, "use_vllm", False) and config.vllm_mode == "colocate":
        parts["vLLM (colocated)"] = int(config.vllm_gpu_memory_utilization * gpu_bytes)

    image_tokens = (config.image_max_pixels or 1003520) // PIXELS_PER_TOKEN  # Qwen's default: 1280 tokens
    completion = config.max_completion_length if stage == "grpo" else SFT_COMPLETION_TOKENS
    tokens = IMAGES_PER_SAMPLE * image_tokens + PROMPT_TEXT_TOKENS + completion
    batch = config.per_device_train_batch_size
    act = 2  # bf16 activations under autocast
    layer_internals = tokens * (4 * arch.hidden + 2 * arch.kv_width + 3 * arch.intermediate) * act
    if config.gradient_checkpointing:
        language = arch.layers * tokens * arch.hidden * act + 2 * layer_internals
    else:
        language = arch.layers * layer_internals
    patches = IMAGES_PER_SAMPLE * image_tokens * 4  # before the 2x2 merge
    vision_layer = patches * arch.vision_hidden * 8 * act
    vision = vision_layer * (1 if config.freeze_vision_tower else arch.vision_layers)
    parts["activations"] = batch * (language + vision)
    scored = tokens if stage == "sft" else completion
    parts["logits"] = batch * scored * arch.vocab * (2 + 4 + 4)
    if stage == "grpo" and not getattr(config, "use_vllm", False):
        generation_batch = batch * (getattr(config, "steps_per_generation", None) or 1)
        parts["KV cache (generation)"] = generation_batch * tokens * arch.layers * 2 * arch.kv_width * act
    notes.append(
        f"{_count(arch.parameters)} parameters ({arch.name}), {_count(trainable)} trainable, "
        f"weights in {dtype}; {tokens} tokens per sequence ({IMAGES_PER_SAMPLE} x {image_tokens} image, "
        f"{completion} completion), {batch} per GPU"
    )
    return Plan(recipe, stage, gpus, zero, gpu_bytes, parts, notes)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _recipe_model_dir(recipe: str) -> Path | None:
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        return path.resolve().parent.parent
    folder = RECIPES_DIR / str(recipe).partition("/")[0]
    return folder if folder.is_dir() else None


def shipped_recipes(stage: str) -> list[str]:
    """Short names of the shipped full-size recipes of ``stage`` (``qwen2.5-vl-3b``, ``qwen2.5-vl-7b/lora``...)."""
    names = []
    for path in sorted(RECIPES_DIR.glob(f"*/{stage}/config*.yaml")):
        model_dir = path.parent.parent
        if not (model_dir / "model_config.json").is_file():
            continue  # tiny: no full-size architecture
        variant = path.stem.removeprefix("config").removeprefix("_")
        names.append(model_dir.name + (f"/{variant}" if variant else ""))
    return names


def plan_for(recipe: str, stage: str, gpu_gb: float, gpus: int = 1, zero: int = 0, overrides=None) -> Plan:
    """Load a recipe's config (as ``medgen train`` would) and estimate it."""
    from training.config import load_config
    from training.stages import config_class

    values = {"use_cpu": True, "report_to": "none", **(overrides or {})}  # no device query while estimating
    config = load_config(config_class(stage), recipe, stage, values)
    return estimate(config, stage, recipe, gpu_gb, gpus, zero)


def alternatives(stage: str, gpu_gb: float, gpus: int, zero: int, exclude: str) -> list[Plan]:
    """Shipped recipes of ``stage`` that fit, smallest first."""
    plans = []
    for name in shipped_recipes(stage):
        if name == exclude:
            continue
        plan = plan_for(name, stage, gpu_gb, gpus, zero)
        if plan.fits:
            plans.append(plan)
    return sorted(plans, key=lambda p: p.total)


def detected_gpu() -> tuple[float | None, int]:
    """(memory of GPU 0 in GB, GPUs in this launch) from torch and the launcher's environment."""
    gpus = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 1e9, gpus
    except Exception:  # a broken CUDA setup should not stop an estimate
        pass
    return None, gpus


def render(plan: Plan) -> str:
    """The estimate as plain text lines."""
    lines = [f"memory per GPU for {plan.stage} recipe {plan.recipe} on {plan.gpus} GPU(s), ZeRO-{plan.zero}:"]
    for name, size in plan.parts.items():
        lines.append(f"  {name:<24} {size / GIB:8.1f} GiB")
    lines.append(
        f"  {'CUDA context + 10% slack':<24} {(plan.total - sum(plan.parts.values())) / GIB:8.1f} GiB"
    )
    lines.append(f"  {'total':<24} {plan.total / GIB:8.1f} GiB of {plan.gpu_bytes / GIB:.1f} GiB")
    lines += [f"  ({note})" for note in plan.notes]
    return "\n".join(lines)


MULTI_GPU = ((8, 80, 2), (8, 80, 3))
MAX_GPU_GB = 1024
"""The most memory one GPU may be said to have (today's largest hold about 288 GB)."""
MAX_GPUS = 65536  # the recipes' multi-GPU launches (accelerate_configs/zero{2,3}.yaml)


def fit_table(gpu_sizes: tuple[int, ...] = GPU_SIZES_GB) -> str:
    """Markdown: each shipped recipe's estimate per GPU on one GPU of each size, and on 8 x 80 GB with ZeRO."""
    columns = [(1, gb, 0) for gb in gpu_sizes] + list(MULTI_GPU)
    titles = [f"{n} x {gb} GB" + (f", ZeRO-{z}" if z else "") for n, gb, z in columns]
    rows = ["| Stage | Recipe | " + " | ".join(titles) + " |", "|" + "---|" * (2 + len(columns))]
    for stage in ("sft", "grpo"):
        for name in shipped_recipes(stage):
            plans = [plan_for(name, stage, gb, n, z) for n, gb, z in columns]
            marks = " | ".join(f"{'fits' if p.fits else '**no**'} ({p.total / GIB:.0f})" for p in plans)
            rows.append(f"| {stage} | {name} | {marks} |")
    return "\n".join(rows)


def check(
    config: Any, stage: str, recipe: str, gpu_gb: float | None, gpus: int | None, zero: int | None
) -> Plan:
    """The plan for ``config`` on the given (or detected) GPUs; raises a one-line error naming a recipe that fits."""
    detected_gb, launched = detected_gpu()
    gpu_gb = detected_gb if gpu_gb is None else gpu_gb
    if gpu_gb is None:
        raise MedgenError("no GPU here to size the plan for: pass --gpu-memory GB (e.g. 80) and --gpus N")
    if not math.isfinite(gpu_gb) or not 0 < gpu_gb <= MAX_GPU_GB:
        raise MedgenError(
            f"--gpu-memory must be a GPU's memory in GB, above 0 and at most {MAX_GPU_GB}, got {gpu_gb:g}"
        )
    gpus = launched if gpus is None else gpus
    if not 1 <= gpus <= MAX_GPUS:
        raise MedgenError(f"--gpus must be between 1 and {MAX_GPUS}, got {gpus}")
    if zero is None:
        zero = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0") or 0)
    plan = estimate(config, stage, recipe, gpu_gb, gpus, zero)
    if not plan.fits:
        others = alternatives(stage, gpu_gb, gpus, zero, exclude=recipe)
        hint = (
            "; fits: " + ", ".join(f"--recipe {p.recipe} ({p.total / GIB:.0f} GiB)" for p in others[:3])
            if others
            else "; no shipped recipe fits either: add GPUs with ZeRO (--gpus 8 --zero 3) or lower "
            "per_device_train_batch_size / image_max_pixels"
        )
        raise PlanTooLarge(
            f"{stage} recipe {recipe} needs about {plan.total / GIB:.0f} GiB per GPU, more than "
            f"{gpus} x {gpu_gb:.0f} GB (ZeRO-{zero}) has{hint}",
            plan,
        )
    return plan


class PlanTooLarge(MedgenError):
    """A plan that does not fit; carries the estimate so it can be shown."""

    def __init__(self, message: str, plan: Plan):
        super().__init__(message)
        self.plan = plan


if __name__ == "__main__":  # python -m training.preflight: the README's table
    print(fit_table())
