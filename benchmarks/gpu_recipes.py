"""GPU-ready check: the shipped recipes' real shapes on full-size random-weight models, no Hub download.

For each shipped training recipe (``training/recipes/qwen2.5-vl-{3b,7b}``), builds the full-size
Qwen2.5-VL architecture from the config kept beside it (``model_config.json``) with random weights,
directly on the GPU in the recipe's dtype, and runs a few optimizer steps through medgen's own
``train_sft`` / ``train_grpo`` with the recipe's shapes: five 512x512 images per sample resized to the
recipe's ``image_max_pixels``, its batch, ``num_generations``, ``max_completion_length`` (a random model
never stops early, so every completion is the full length: the worst case), gradient checkpointing,
LoRA, reference model. Then builds SDXL inpainting (UNet, VAE and both text encoders, from
``benchmarks/model_configs/sdxl-inpainting``), saves it, and runs ``medgen generate --backend diffusers``
on sample products at the generation defaults (512 px, 30 steps, batch 4).

It prints, per recipe, the median step time, the peak GPU memory and ``medgen train --dry-run``'s estimate
beside it, and the generation rate in images/s. Recipes the preflight says will not fit this GPU are
listed as skipped, not run. The text side uses medgen's small offline tokenizer (no Qwen tokenizer
here); token ids fit the full vocabulary, so the logits are full size.

    .venv/bin/python benchmarks/gpu_recipes.py                  # on a GPU: the table for the README
    .venv/bin/python benchmarks/gpu_recipes.py --scale tiny     # CPU: the same code paths, tiny sizes (tested)
    .venv/bin/python benchmarks/gpu_recipes.py --only qwen2.5-vl-7b/lora --steps 5 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import RECIPES_DIR  # noqa: E402

SDXL_CONFIGS = Path(__file__).resolve().parent / "model_configs" / "sdxl-inpainting"
RECIPES = (
    ("qwen2.5-vl-3b", "sft"),
    ("qwen2.5-vl-3b", "grpo"),
    ("qwen2.5-vl-7b", "sft"),
    ("qwen2.5-vl-7b", "grpo"),
    ("qwen2.5-vl-7b/lora", "sft"),
    ("qwen2.5-vl-7b/lora", "grpo"),
    ("qwen2.5-vl-3b/vllm", "grpo"),
)
SOURCE_SIZE = 512  # the sample images, before the recipe's image bound


@dataclass
class Result:
    part: str
    recipe: str
    shapes: str
    status: str  # ran, skipped: <why>
    step_s: float | None = None
    peak_gib: float | None = None
    estimate_gib: float | None = None
    rate: str | None = None


# ---- devices and memory ---------------------------------------------------------------------------


def device_info(scale: str) -> tuple[Any, float | None, str]:
    import torch

    if scale == "full":
        if not torch.cuda.is_available():
            raise SystemExit("--scale full needs a CUDA GPU; on CPU run --scale tiny")
        props = torch.cuda.get_device_properties(0)
        return torch.device("cuda"), props.total_memory / 1e9, props.name
    return torch.device("cpu"), None, "cpu"


def reset_peak(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # process peak RSS (KiB -> GiB)


# ---- the vision-language model ---------------------------------------------------------------------


def qwen_config(model_dir: str, tokenizer: Any, scale: str) -> Any:
    """The recipe's architecture (tiny: same structure, small sizes), token ids from medgen's tokenizer."""
    from transformers import Qwen2_5_VLConfig

    values = json.loads((RECIPES_DIR / model_dir / "model_config.json").read_text())
    if scale == "tiny":
        values.update(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        )
        values["vision_config"].update(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64,
            fullatt_block_indexes=[1],
        )  # fmt: skip
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in TOKEN_ROLES.items()}
    values.update(ids)
    return Qwen2_5_VLConfig(**values)


TOKEN_ROLES = {
    "bos_token_id": "<|endoftext|>",
    "eos_token_id": "<|im_end|>",
    "pad_token_id": "<|endoftext|>",
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
}


def build_vlm(config: Any, model_config: Any, device: Any) -> Any:
    """Random weights, initialised on ``device`` in the recipe's dtype (no CPU copy of a 7B model)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from training.model import freeze_vision_tower

    dtype = getattr(
        torch, "bfloat16" if config.dtype == "auto" else config.dtype
    )  # auto: as the Hub saves it
    kwargs = {"attn_implementation": config.attn_implementation} if config.attn_implementation else {}
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(model_config, dtype=dtype, **kwargs)
    text = model_config.get_text_config()
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id
    )
    if config.freeze_vision_tower:
        freeze_vision_tower(model)
    return model


@contextlib.contextmanager
def random_reference_model(policy: Any, device: Any) -> Iterator[None]:
    """GRPO's reference model as TRL builds it (same class, config, dtype), but random: there is no checkpoint."""
    import torch
    from trl.trainer import grpo_trainer

    original = grpo_trainer.create_model_from_path

    def build(model_id: str, **kwargs: Any) -> Any:
        with torch.device(device):
            return type(policy)._from_config(policy.config, dtype=kwargs.get("dtype", policy.dtype))

    grpo_trainer.create_model_from_path = build
    try:
        yield
    finally:
        grpo_trainer.create_model_from_path = original


def sample_rows(count: int, size: int) -> Any:  # -> datasets.Dataset
    """Benchmark rows in the export's columns: five noise photos, the real prompt, reasoning and answer."""
    import datasets
    import numpy as np
    from PIL import Image

    from schemas.models import CandidateLabel, answer_letters, format_answer
    from schemas.prompts import completion_messages, prompt_messages, question_text, rationale_text
    from schemas.taxonomy import QUESTION_DIMENSIONS

    rng = np.random.default_rng(0)
    rows: dict[str, list[Any]] = {
        "id": [],
        "dimension": [],
        "images": [],
        "prompt": [],
        "completion": [],
        "answer": [],
    }
    for i in range(count):
        dimension = QUESTION_DIMENSIONS[i % len(QUESTION_DIMENSIONS)]
        labels = [
            CandidateLabel(acceptable=True),
            CandidateLabel(defects=("floating",), acceptable=False),
            CandidateLabel(defects=("text_garbled",), acceptable=False),
            CandidateLabel(acceptable=True),
        ]
        letters = answer_letters(labels, dimension) or ["A"]
        answer = format_answer(letters)
        rows["images"].append(
            [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(5)]
        )
        rows["prompt"].append(prompt_messages(question_text(dimension)))
        rows["completion"].append(completion_messages(rationale_text(labels, dimension), answer))
        rows["answer"].append(answer)
        rows["id"].append(f"q{i}")  # hard-case mining (on in the 3B/7B GRPO recipes) keeps difficulty per id
        rows["dimension"].append(dimension)
    return datasets.Dataset.from_dict(rows)


def sequence_tokens(processor: Any, config: Any, stage: str) -> int:
    """Tokens of one training sequence: the prompt with its five images, plus the reference or longest completion."""
    from PIL import Image

    row = sample_rows(1, SOURCE_SIZE)[0]
    images = [Image.new("RGB", (SOURCE_SIZE, SOURCE_SIZE))] * 5
    messages = row["prompt"] + (row["completion"] if stage == "sft" else [])
    text = processor.apply_chat_template(messages, add_generation_prompt=stage == "grpo", tokenize=False)
    tokens = len(processor(text=[text], images=[images], return_tensors="pt")["input_ids"][0])
    return tokens + (config.max_completion_length if stage == "grpo" else 0)


class StepTimer:
    """A trainer callback recording each optimizer step's wall time."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self._start = 0.0

            def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
                self._sync()
                self._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
                self._sync()
                self.times.append(time.perf_counter() - self._start)

            @staticmethod
            def _sync() -> None:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()

        return _Timer()


def run_recipe(
    recipe: str, stage: str, args: argparse.Namespace, device: Any, gpu_gb: float | None
) -> Result:
    from training.config import load_config
    from training.preflight import GIB, plan_for
    from training.tiny import build_processor

    model_dir = recipe.partition("/")[0]
    overrides: dict[str, Any] = {
        "output_dir": str(Path(args.workdir) / recipe.replace("/", "-") / stage),
        "max_steps": args.steps,
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "disable_tqdm": True,
    }
    if stage == "grpo":
        overrides["log_completions"] = False  # a random model's completions are noise
    if args.scale == "tiny":
        overrides.update(use_cpu=True, bf16=False, image_max_pixels=56 * 56, dtype="float32")
        if stage == "grpo":
            overrides["max_completion_length"] = 16
    from training.stages import config_class, train

    config = load_config(
        config_class(stage), recipe, stage, {**overrides, "model_name_or_path": str(RECIPES_DIR)}
    )
    shapes = (
        f"5 x {config.image_max_pixels // 784} image tokens, batch {config.per_device_train_batch_size}"
        + (
            f", {config.num_generations} generations x {config.max_completion_length} tokens"
            if stage == "grpo"
            else ""
        )
        + (f", LoRA r={config.lora_r}" if config.use_peft else "")
    )
    estimate = None
    if args.scale == "full":
        plan = plan_for(recipe, stage, gpu_gb)
        estimate = plan.total / GIB
        if not plan.fits:
            return Result(
                stage, recipe, shapes, f"skipped: preflight {estimate:.0f} GiB", estimate_gib=estimate
            )
    if getattr(config, "use_vllm", False):
        try:
            import vllm  # noqa: F401
        except ImportError:
            return Result(stage, recipe, shapes, "skipped: vLLM not installed", estimate_gib=estimate)
        if device.type != "cuda":
            return Result(stage, recipe, shapes, "skipped: vLLM needs a GPU", estimate_gib=estimate)
    processor = build_processor()
    processor.image_processor.size = {
        "shortest_edge": processor.image_processor.size["shortest_edge"],
        "longest_edge": config.image_max_pixels,
    }
    shapes += f", {sequence_tokens(processor, config, stage)} tokens per sequence"
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    prompts = per_step // (config.num_generations if stage == "grpo" else 1)
    dataset = sample_rows(max(8, prompts * (args.steps + 1)), SOURCE_SIZE if args.scale == "full" else 64)
    reset_peak(device)
    model = build_vlm(config, qwen_config(model_dir, processor.tokenizer, args.scale), device)
    timer = StepTimer()
    # The trainers print their logs on stdout; the table is this script's only stdout.
    with random_reference_model(model, device), contextlib.redirect_stdout(sys.stderr):
        train(stage, config, dataset=dataset, model=model, processor=processor, callbacks=[timer], save=False)
    peak = peak_gib(device)
    steady = timer.times[1:] or timer.times
    del model
    reset_peak(device)
    return Result(stage, recipe, shapes, "ran", statistics.median(steady), peak, estimate)


# ---- SDXL inpainting ------------------------------------------------------------------------------


def sdxl_components(scale: str, device: Any = "cpu") -> dict[str, Any]:
    """SDXL inpainting's components from the kept configs (tiny: same classes and wiring, small sizes).

    The models are initialised on ``device`` (``meta`` counts parameters without memory); the scheduler
    and tokenizer stay on the CPU.
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from medgen.generation.tiny_pipeline import tiny_tokenizer

    def config(name: str) -> dict[str, Any]:
        return json.loads((SDXL_CONFIGS / f"{name}.json").read_text())

    unet, vae, text, text_2 = config("unet"), config("vae"), config("text_encoder"), config("text_encoder_2")
    if scale == "tiny":
        unet.update(
            block_out_channels=[32, 64], layers_per_block=1, attention_head_dim=[2, 4],
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], transformer_layers_per_block=[1, 1],
            cross_attention_dim=64, addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
            norm_num_groups=8, sample_size=32,
        )  # fmt: skip
        vae.update(block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=8, sample_size=256)
        text.update(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
        )
        text_2.update(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
        )
    tokenizer = tiny_tokenizer()
    tokenizer.model_max_length = text["max_position_embeddings"]
    for values in (text, text_2):
        values.update(
            vocab_size=max(values["vocab_size"], len(tokenizer)),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    with torch.device(device):
        models = {
            "unet": UNet2DConditionModel.from_config(
                {k: v for k, v in unet.items() if not k.startswith("_")}
            ),
            "vae": AutoencoderKL.from_config({k: v for k, v in vae.items() if not k.startswith("_")}),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**text)),
            "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**text_2)),
        }
    return {
        **models,
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer,
        "scheduler": EulerDiscreteScheduler.from_config(
            {k: v for k, v in config("scheduler").items() if not k.startswith("_")}
        ),
    }


def run_sdxl(args: argparse.Namespace, device: Any) -> Result:
    import torch
    from diffusers import StableDiffusionXLInpaintPipeline

    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.sources.ingest import add_sources
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace

    work = Path(args.workdir) / "sdxl"
    folder = work / "pipeline"
    torch.manual_seed(0)
    pipeline = StableDiffusionXLInpaintPipeline(**sdxl_components(args.scale, device))
    dtype = "fp16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        pipeline.to(torch.float16)
    pipeline.save_pretrained(folder)
    del pipeline
    reset_peak(device)
    resolution, steps = (512, 30) if args.scale == "full" else (64, 2)
    sources = args.sources if args.scale == "full" else 2
    workspace = init_workspace(work / "workspace")
    add_sources(workspace, write_samples(work / "photos", sources, seed=0))
    config = GenerationConfig(
        backend="diffusers", model=str(folder), device=device.type, dtype=dtype,
        resolution=resolution, steps=steps, batch_size=4,
    )  # fmt: skip
    marks: list[tuple[float, int]] = []
    report = generate(
        workspace, config, on_progress=lambda done, total: marks.append((time.perf_counter(), done))
    )
    workspace.close()
    if report.failures:
        raise SystemExit(f"SDXL generation failed: {report.failures[0]}")
    peak = peak_gib(device)
    (t0, d0), (t1, d1) = marks[0], marks[-1]
    rate = (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else float("nan")
    shapes = f"{resolution} px, {steps} steps, batch 4, {dtype}"
    return Result("generate", "sdxl-inpainting", shapes, "ran", None, peak, None, f"{rate:.2f} images/s")


# ---- report ---------------------------------------------------------------------------------------


def table(results: list[Result], device_name: str, scale: str) -> str:
    memory = "peak GPU memory (GiB)" if scale == "full" else "peak RSS (GiB)"
    lines = [
        f"device: {device_name}, scale: {scale}",
        "",
        f"| Part | Recipe | Shapes | Status | Step (s) | {memory} | Preflight (GiB) | Rate |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: float | None, digits: int) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    for r in results:
        lines.append(
            f"| {r.part} | {r.recipe} | {r.shapes} | {r.status} | {cell(r.step_s, 2)} | "
            f"{cell(r.peak_gib, 1)} | {cell(r.estimate_gib, 0)} | {r.rate or '–'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("full", "tiny"), default="full")
    parser.add_argument(
        "--steps", type=int, default=3, help="optimizer steps per recipe (the first is warm-up)"
    )
    parser.add_argument("--only", action="append", help="recipe[:stage] to run (repeatable; default all)")
    parser.add_argument("--no-sdxl", action="store_true", help="skip the generation check")
    parser.add_argument(
        "--sources", type=int, default=8, help="sample products for the SDXL check (x4 images)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    device, gpu_gb, device_name = device_info(args.scale)
    selected = [
        (recipe, stage)
        for recipe, stage in RECIPES
        if not args.only or any(o in (recipe, f"{recipe}:{stage}") for o in args.only)
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gpu-recipes-") as workdir:
        args.workdir = workdir
        for recipe, stage in selected:
            print(f"{recipe} {stage} ...", file=sys.stderr, flush=True)
            results.append(run_recipe(recipe, stage, args, device, gpu_gb))
        if not args.no_sdxl:
            print("sdxl-inpainting generate ...", file=sys.stderr, flush=True)
            results.append(run_sdxl(args, device))
    print(table(results, device_name, args.scale))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return results


if __name__ == "__main__":
    main()
