"""`medgen export`, `medgen publish` and `medgen schema`: thin commands over ``medgen.export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from medgen.console import WorkspaceOpt, build_config, config_options, console, progress
from medgen.errors import MedgenError
from medgen.export.config import ExportConfig


def _ratios(text: str) -> dict[str, float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise MedgenError(
            f"--split {text!r} must be three comma-separated ratios train,validation,test, e.g. 0.8,0.1,0.1"
        )
    return dict(zip(("train", "validation", "test"), values, strict=True))


@config_options(ExportConfig, skip=("train", "validation", "test"))
def export_command(
    split: Annotated[
        str | None,
        typer.Option(
            "--split", help="Ratios train,validation,test per source, e.g. 0.8,0.1,0.1.", show_default=False
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Build, validate and write a versioned Hugging Face dataset (Parquet + card) under exports/VERSION."""
    from medgen.export.dataset import export_dataset
    from medgen.workspace import open_workspace

    config = build_config(ExportConfig, options or {}, **(_ratios(split) if split else {}))
    version = config.version
    with open_workspace(workspace) as ws, progress() as bar:
        task = bar.add_task(f"exporting {version}", total=None, unit="sources")
        report = export_dataset(
            ws,
            config,
            on_start=lambda total: bar.update(task, total=total),
            on_progress=lambda samples: bar.advance(task),
        )
    counts = ", ".join(f"{name} {sum(c.values())}" for name, c in report.counts.items())
    console.print(
        f"exported {report.version}: {report.num_samples} samples ({counts}) to {report.path}",
        highlight=False,
    )
    if report.previous:
        c = report.changes
        console.print(
            f"since {report.previous}: {c['added']} added, {c['removed']} removed, {c['changed']} changed; "
            f"see {report.path / 'changelog.md'}",
            highlight=False,
        )
    if report.skipped:
        console.print(
            f"[yellow]{len(report.skipped)} source(s) made no sample[/]; reasons in {report.report_path}",
            highlight=False,
        )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def publish_command(
    repo: Annotated[str, typer.Option("--repo", help="Hub dataset repo ORG/NAME (created when missing).")],
    version: Annotated[
        str, typer.Option("--version", "-v", help="Export version to publish; becomes the tag.")
    ],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be uploaded and tagged; upload nothing.")
    ] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Push exports/VERSION to the Hugging Face Hub and tag it VERSION (token: HF_TOKEN or `hf auth login`)."""
    from medgen.export.publish import publish_export
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        plan = publish_export(ws, repo, version, private=private, dry_run=dry_run)
    for note in plan.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    if dry_run:
        for name, size in plan.files:
            console.print(f"  {name}  {_size(size)}", highlight=False)
        where = {None: "unchecked", True: "existing", False: "new private" if private else "new public"}[
            plan.repo_exists
        ]
        console.print(
            f"dry run: would upload {len(plan.files)} files ({_size(plan.total_bytes)}) from {plan.folder} "
            f"to dataset {repo} ({where} repo) and create tag {version}",
            highlight=False,
        )
        return
    console.print(f"published {version} to {plan.url} (commit {plan.commit})", highlight=False)


def schema_command(
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
