"""`medgen init` and `medgen status`: create a workspace, and count what each stage has made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medgen.console import WorkspaceOpt, console


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")] = Path("."),
) -> None:
    """Create a workspace: catalog, image store, report folders."""
    from medgen.workspace import init_workspace

    with init_workspace(directory) as workspace:
        console.print(f"workspace ready at [bold]{workspace.root}[/]")
        console.print(f"next: medgen sources add PHOTOS... -w {workspace.root}")


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
