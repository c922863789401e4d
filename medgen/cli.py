"""The `medgen` command: one Typer app, a sub-app or command per stage. Thin: parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from annotation.cli import annotate_app
from medgen.console import App, WorkspaceOpt, console, progress
from medgen.export.cli import export_command, publish_command
from medgen.generation.cli import generate_command
from medgen.sources.cli import samples
from training.cli import train_app
from training.evaluation.cli import eval_cli

app = App(help="Build, grow and publish a benchmark for screening AI-generated medicine-product images.")
sources_app = App(help="Add and list source photos.")

# Panels, in the order data flows: help lists the stages as the pipeline runs them.
WORKSPACE, STAGES, MAIN, REFERENCE = "Workspace and sources", "Pipeline stages", "Main job", "Reference"


@app.command(rich_help_panel=WORKSPACE)
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path("."),
) -> None:
    """Create a workspace: catalog, image store, report folders."""
    from medgen.workspace import init_workspace

    with init_workspace(directory) as workspace:
        console.print(f"workspace ready at [bold]{workspace.root}[/]")
        console.print(f"next: medgen sources add PHOTOS... -w {workspace.root}")


@app.command(rich_help_panel=WORKSPACE)
def status(
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Counts per stage: sources, candidates, tasks, annotations, exports."""
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        counts = ws.counts()
        if as_json:
            print(json.dumps({"workspace": str(ws.root), **counts}, indent=2))
            return
        table = Table(title=f"medgen workspace {ws.root}")
        table.add_column("stage")
        table.add_column("what")
        table.add_column("count", justify="right")
        stages = {
            "sources": "sources",
            "candidates": "generation",
            "sources_complete": "generation",
            "generation_failures": "generation",
            "ls_projects": "annotation",
            "tasks": "annotation",
            "annotations": "annotation",
            "annotations_valid": "annotation",
            "annotations_rejected": "annotation",
            "exports": "export",
        }
        for key, value in counts.items():
            table.add_row(stages.get(key, ""), key.replace("_", " "), str(value))
        console.print(table)


app.add_typer(sources_app, name="sources", rich_help_panel=WORKSPACE)
app.command("samples", rich_help_panel=WORKSPACE)(samples)
app.command("generate", rich_help_panel=STAGES)(generate_command)
app.add_typer(annotate_app, name="annotate", rich_help_panel=STAGES)
app.command("export", rich_help_panel=STAGES)(export_command)
app.command("publish", rich_help_panel=STAGES)(publish_command)
app.add_typer(train_app, name="train", rich_help_panel=STAGES)
app.command("eval", rich_help_panel=STAGES)(eval_cli)


@sources_app.command("add")
def sources_add(
    paths: Annotated[
        list[str], typer.Argument(help="Files, folders (searched recursively) or glob patterns.")
    ],
    workspace: WorkspaceOpt = None,
    phash_threshold: Annotated[
        int, typer.Option(help="Max perceptual-hash distance (bits of 64) that counts as a duplicate.")
    ] = 4,
) -> None:
    """Validate, normalise, deduplicate and add source photos (exit 1 when any file was rejected)."""
    from medgen.sources.ingest import add_sources
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws, progress() as bar:
        task = bar.add_task("adding sources", total=None, unit="files")
        report = add_sources(
            ws,
            paths,
            phash_threshold=phash_threshold,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda name: bar.advance(task),
        )
    for name, reason in report.rejected:
        console.print(f"[red]rejected[/] {name}: {reason}", highlight=False)
    for name, existing, how in report.duplicates:
        console.print(f"[yellow]duplicate[/] {name}: same as source {existing[:12]} ({how})", highlight=False)
    s = report.summary()
    console.print(
        f"added {s['added']}, duplicate {s['duplicate']}, rejected {s['rejected']}; report: {report.report_path}"
    )
    if s["rejected"]:
        raise typer.Exit(1)  # the batch went on; the exit code tells scripts that some files were not taken


@sources_app.command("list")
def sources_list(
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the workspace's sources with their candidate counts."""
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        sources = ws.catalog.sources()
        slots = ws.catalog.candidate_slots()
        if as_json:
            for source in sources:
                print(
                    json.dumps(
                        {**source.model_dump(mode="json"), "candidates": len(slots.get(source.id, ()))}
                    )
                )
            return
        table = Table(title=f"{len(sources)} sources")
        for column in ("id", "file", "size", "mask", "candidates"):
            table.add_column(column)
        for source in sources:
            table.add_row(
                source.id[:12],
                source.original_name,
                f"{source.width}x{source.height}",
                "alpha" if source.mask_from_alpha else "opencv",
                str(len(slots.get(source.id, ()))),
            )
        console.print(table)


@app.command(rich_help_panel=MAIN)
def demo(
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
    sft_steps: Annotated[int, typer.Option(help="SFT steps on the tiny VLM.")] = 6,
    grpo_steps: Annotated[int, typer.Option(help="GRPO steps on the tiny VLM.")] = 3,
    keep_server: Annotated[
        bool, typer.Option("--keep-server", help="Leave Label Studio running so a person can annotate.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of every stage.")] = 0,
) -> None:
    """Run every stage end to end on CPU: samples, generation, Label Studio, export, SFT, GRPO, eval."""
    from pydantic import ValidationError

    from medgen.demo import DemoConfig, run_demo
    from medgen.errors import config_error

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


@app.command(rich_help_panel=REFERENCE)
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of one benchmark sample."""
    from schemas import BenchmarkSample

    text = json.dumps(BenchmarkSample.model_json_schema(), indent=2)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n")
        console.print(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
