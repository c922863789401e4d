"""`medgen demo`: the main job, every stage end to end (``medgen.demo.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medgen.errors import config_error


def demo_command(
    directory: Annotated[
        Path, typer.Argument(help="Workspace folder for the demo (resumed if it exists).")
    ] = Path("medgen-demo"),
    sources: Annotated[int, typer.Option("--sources", "-n", help="Sample product photos to draw.")] = 24,
    annotators: Annotated[
        str, typer.Option(help="Simulated annotators, comma-separated.")
    ] = "ann1,ann2,ann3",
    overlap: Annotated[int, typer.Option(help="Annotators per task.")] = 3,
    noise: Annotated[float, typer.Option(help="Error rate of the simulated annotators.")] = 0.1,
    backend: Annotated[
        str, typer.Option(help="Generation backend: synthetic (CPU) or diffusers (GPU).")
    ] = "synthetic",
    model: Annotated[
        str | None, typer.Option(help="Diffusers inpainting checkpoint for --backend diffusers.")
    ] = None,
    sft_steps: Annotated[
        int, typer.Option(help="SFT steps on the tiny VLM (500: enough to learn the answer format).")
    ] = 500,
    grpo_steps: Annotated[int, typer.Option(help="DPA-GRPO steps after SFT.")] = 10,
    keep_server: Annotated[
        bool, typer.Option("--keep-server", help="Leave Label Studio running so a person can annotate.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of every stage.")] = 0,
) -> None:
    """Run every stage end to end on CPU: samples, generation, Label Studio, export, SFT, GRPO, eval."""
    from pydantic import ValidationError

    from medgen.demo.demo import DemoConfig, run_demo

    try:
        config = DemoConfig(
            directory=directory,
            sources=sources,
            annotators=[name.strip() for name in annotators.split(",") if name.strip()],
            overlap=overlap,
            noise=noise,
            backend=backend,
            model=model,
            sft_steps=sft_steps,
            grpo_steps=grpo_steps,
            keep_server=keep_server,
            seed=seed,
        )
    except ValidationError as error:
        raise config_error(error, options=True) from None
    run_demo(config)
