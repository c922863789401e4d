"""`medgen sources add/list` and `medgen samples`: bring product photos into a workspace, or draw some."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medgen.console import App, WorkspaceOpt, console, progress

sources_app = App(help="Add and list source photos.")


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
    s = report.summary()
    for name, reason in report.rejected:
        console.print(f"[red]rejected[/] {name}: {reason}", highlight=False)
    if s["rejected"] > len(report.rejected):
        console.print(
            f"[red]... and {s['rejected'] - len(report.rejected)} more rejected[/] (see the report)"
        )
    for name, existing, how in report.duplicates:
        console.print(f"[yellow]duplicate[/] {name}: same as source {existing[:12]} ({how})", highlight=False)
    if s["duplicate"] > len(report.duplicates):
        console.print(
            f"[yellow]... and {s['duplicate'] - len(report.duplicates)} more duplicates[/] (see the report)"
        )
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


def samples(
    directory: Annotated[Path, typer.Argument(help="Folder to write the photos into (created if missing).")],
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many photos to write.")] = 24,
    seed: Annotated[int, typer.Option(help="Same seed, same photos.")] = 0,
) -> None:
    """Write N procedural photos of medicine products (boxes, bottles, blisters, tubes), ready for `sources add`."""
    from medgen.sources.samples import write_samples

    with progress() as bar:
        task = bar.add_task("drawing samples", total=n, unit="images")
        paths = write_samples(directory, n, seed, on_progress=lambda path: bar.advance(task))
    console.print(f"wrote {len(paths)} sample photos to [bold]{directory}[/]")
    console.print(f"next: medgen sources add {directory}")
