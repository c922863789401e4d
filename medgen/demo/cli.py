"""`medgen demo`: the main job, every stage end to end (``medgen.demo.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medgen.console import build_config, config_options
from medgen.demo.config import DemoConfig


@config_options(DemoConfig)
def demo_command(
    directory: Annotated[
        Path, typer.Argument(help="Workspace folder for the demo (resumed if it exists).")
    ] = Path("medgen-demo"),
    options: dict[str, Any] | None = None,
) -> None:
    """Run every stage end to end on CPU: samples, generation, Label Studio, export, SFT, GRPO, eval."""
    from medgen.demo.demo import run_demo

    run_demo(build_config(DemoConfig, options or {}, directory=directory))
