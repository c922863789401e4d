"""The `medgen` command: the root app only mounts each stage's commands, in pipeline order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from annotation.cli import annotate_app
from medgen.checks.cli import check_command
from medgen.console import App
from medgen.cot.cli import cot_command
from medgen.demo.cli import demo_command
from medgen.export.cli import export_command, publish_command, schema_command
from medgen.generation.cli import generate_command
from medgen.screen.cli import screen_command, screen_for_prefill
from medgen.sources.cli import samples, sources_app
from medgen.workspace.cli import init, status
from training.cli import train_app
from training.evaluation.cli import eval_cli

if TYPE_CHECKING:
    from annotation.prefill import Screener

app = App(help="Build, grow and publish a benchmark for screening AI-generated medicine-product images.")


@dataclass(frozen=True)
class Wiring:
    """What a stage's command needs from an app above it, handed down by the root command (Click's ``ctx.obj``)."""

    screener: Screener  # `annotate push --predictions model:/endpoint:` runs `medgen screen`'s core


@app.callback()
def wire(ctx: typer.Context) -> None:
    ctx.obj = Wiring(screener=screen_for_prefill)


# Panels, in the order data flows: help lists the stages as the pipeline runs them.
WORKSPACE, STAGES, MAIN, REFERENCE = "Workspace and sources", "Pipeline stages", "Main job", "Reference"

app.command("init", rich_help_panel=WORKSPACE)(init)
app.command("status", rich_help_panel=WORKSPACE)(status)
app.add_typer(sources_app, name="sources", rich_help_panel=WORKSPACE)
app.command("samples", rich_help_panel=WORKSPACE)(samples)
app.command("generate", rich_help_panel=STAGES)(generate_command)
app.command("check", rich_help_panel=STAGES)(check_command)
app.add_typer(annotate_app, name="annotate", rich_help_panel=STAGES)
app.command("export", rich_help_panel=STAGES)(export_command)
app.command("publish", rich_help_panel=STAGES)(publish_command)
app.command("cot", rich_help_panel=STAGES)(cot_command)
app.add_typer(train_app, name="train", rich_help_panel=STAGES)
app.command("eval", rich_help_panel=STAGES)(eval_cli)
app.command("screen", rich_help_panel=STAGES)(screen_command)
app.command("demo", rich_help_panel=MAIN)(demo_command)
app.command("schema", rich_help_panel=REFERENCE)(schema_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
