"""`medgen train sft|grpo`: thin Typer commands over ``training.sft.train_sft`` / ``training.grpo.train_grpo``."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from medgen.console import App, console
from training.stages import Stage

train_app = App(
    help="Fine-tune a vision-language model on an exported benchmark: CoT SFT, then DPA-GRPO (TRL)."
)

RecipeOpt = Annotated[
    str,
    typer.Option(
        "--recipe",
        "-r",
        help="Recipe name in training/recipes (qwen2.5-vl-3b, qwen2.5-vl-7b/lora, tiny, ...) or a YAML file.",
    ),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="Export folder (exports/<version>) or Hub dataset id ORG/NAME."),
]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Dataset version tag or commit (Hub or exports/).")
]
SplitOpt = Annotated[
    str | None, typer.Option("--split", help="Split to train on (default: the recipe's, train).")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output-dir", "-o", help="Where checkpoints and the model go.")
]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue from the last checkpoint in the output folder.")
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Estimate memory per GPU (weights, gradients, AdamW, reference model, activations for 5 images) "
        "and stop; refuses a plan that will not fit, naming a recipe that will.",
    ),
]
GpuMemoryOpt = Annotated[
    float | None, typer.Option("--gpu-memory", help="GB per GPU for --dry-run (default: this machine's GPU).")
]
GpusOpt = Annotated[
    int | None, typer.Option("--gpus", help="GPUs in the launch for --dry-run (default: $WORLD_SIZE).")
]
ZeroOpt = Annotated[
    int | None,
    typer.Option(
        "--zero", help="DeepSpeed ZeRO stage for --dry-run, 0-3 (default: the accelerate launch's)."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any config field: --set learning_rate=1e-5 (repeatable)."),
]


def _dry_run(config: Any, stage: str, recipe: str, gpu_memory, gpus, zero) -> None:
    """Print the memory estimate; exit 1 (one line naming a recipe that fits) when it does not fit."""
    from medgen.errors import MedgenError
    from training.preflight import PlanTooLarge, check, render

    try:
        plan = check(config, stage, recipe, gpu_memory, gpus, zero)
    except PlanTooLarge as error:
        console.print(render(error.plan), highlight=False)
        raise MedgenError(str(error)) from None
    console.print(render(plan), highlight=False)
    console.print(f"[green]fits[/]: about {plan.total / 1024**3:.0f} GiB per GPU; drop --dry-run to train")


def _overrides(dataset, revision, split, output_dir, model, max_steps, pairs) -> dict[str, Any]:
    from training.config import parse_overrides

    return {
        **parse_overrides(pairs or []),
        "dataset": dataset,
        "dataset_revision": revision,
        "dataset_split": split,
        "output_dir": str(output_dir) if output_dir else None,
        "model_name_or_path": model,
        "max_steps": max_steps,
    }


def _stage_command(stage: Stage, summary: str, model_help: str, next_step: str) -> Callable[..., None]:
    """The `medgen train STAGE` command: a recipe, overrides, then a memory plan (--dry-run) or the run."""
    ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help=model_help)]

    def command(
        recipe: RecipeOpt = "qwen2.5-vl-3b",
        dataset: DatasetOpt = None,
        revision: RevisionOpt = None,
        split: SplitOpt = None,
        output_dir: OutputOpt = None,
        model: ModelOpt = None,
        max_steps: MaxStepsOpt = None,
        resume: ResumeOpt = False,
        set_: SetOpt = None,
        dry_run: DryRunOpt = False,
        gpu_memory: GpuMemoryOpt = None,
        gpus: GpusOpt = None,
        zero: ZeroOpt = None,
    ) -> None:
        from training.config import load_config
        from training.stages import config_class, train

        overrides = _overrides(dataset, revision, split, output_dir, model, max_steps, set_)
        if dry_run:
            overrides["use_cpu"] = (
                True  # sizing a GPU plan needs no GPU here (the config checks bf16 support)
            )
        config = load_config(config_class(stage), recipe, stage, overrides)
        if dry_run:
            _dry_run(config, stage, recipe, gpu_memory, gpus, zero)
            return
        path = train(stage, config, resume=resume)
        console.print(
            f"{stage.upper()} model saved to [bold]{path}[/]; next: {next_step.format(recipe=recipe, path=path)}"
        )

    command.__doc__ = summary
    return command


train_app.command("sft")(
    _stage_command(
        "sft",
        "Stage 1: supervised fine-tuning on the reference chain of thought and answer.",
        "Model to fine-tune (Hub id or folder).",
        "medgen train grpo --recipe {recipe}",
    )
)
train_app.command("grpo")(
    _stage_command(
        "grpo",
        "Stage 2: GRPO with the DPA accuracy reward and the format reward, from the SFT output.",
        "Model to start from (default: <output-dir>/../sft).",
        "evaluate it: medgen eval --model {path}",
    )
)
