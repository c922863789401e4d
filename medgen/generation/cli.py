"""`medgen generate`: parse flags (over an optional YAML config), run generation, print the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medgen.console import WorkspaceOpt, config_options, console, progress
from medgen.generation.config import GenerationConfig


@config_options(GenerationConfig, skip=("scenes",))
def generate_command(
    workspace: WorkspaceOpt = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML generation config; flags override its fields.")
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--sources", help="Only these sources (id, id prefix or file name); repeatable."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many sources (of those missing candidates).")
    ] = None,
    remove_orphans: Annotated[
        bool,
        typer.Option(
            help="First delete store files no catalog row references (only while nothing else uses the workspace)."
        ),
    ] = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Make the missing candidates of every source (4 each by default); rerun to resume.

    Under `torchrun --nproc_per_node N` or `accelerate launch` each rank generates its own share of
    the sources; rank 0 merges them into the catalog.
    """
    from medgen.generation.config import load_config
    from medgen.generation.distributed import ranks
    from medgen.generation.generate import generate
    from medgen.generation.manifest import remove_orphan_files
    from medgen.workspace import open_workspace

    settings = load_config(config, **(options or {}))
    main = ranks().is_main
    with open_workspace(workspace) as ws:
        if remove_orphans:
            console.print(f"removed {remove_orphan_files(ws)} orphan file(s)")
        with progress() as bar:
            # Shown once there is work (after recovery, before the model loads), on the main rank only.
            task = bar.add_task(f"generating ({settings.backend})", total=None, unit="images", visible=False)
            report = generate(
                ws,
                settings,
                source_ids=sources,
                limit=limit,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total, visible=main),
            )
    if report.rows_recovered or report.orphans_removed:
        console.print(
            f"recovered {report.rows_recovered} candidate(s) from interrupted runs, removed {report.orphans_removed} orphan file(s)"
        )
    if not report.run_id:
        console.print("nothing to generate: every selected source has its candidates")
        return
    for source_id, error in report.failures:
        console.print(f"[red]failed[/] source {source_id[:12]}: {error}", highlight=False)
    rank = f"rank {report.rank}/{report.world_size}: " if report.world_size > 1 else ""
    console.print(
        f"{rank}generated {report.images_generated} image(s) for {report.sources_planned} source(s) in "
        f"{report.seconds:.1f}s ({report.images_per_s:.2f} images/s), {len(report.failures)} failed source(s)"
    )
    if report.report_path is not None:
        console.print(
            f"run {report.run_id}: {report.rows_merged} candidate(s) added; report: {report.report_path}"
        )
    if settings.drop_failing:
        _say_dropped(report)
    if report.failures and report.rank == 0:  # rank 0 lists the whole run's failures
        raise typer.Exit(1)


def _say_dropped(report: Any) -> None:
    """What `--drop-failing` kept from annotators, by tag."""
    tags: dict[str, int] = {}
    for _, found in report.dropped:
        for finding in found:
            tags[finding["tag"]] = tags.get(finding["tag"], 0) + 1
    named = ", ".join(f"{tag} {n}" for tag, n in sorted(tags.items(), key=lambda kv: -kv[1]))
    console.print(
        f"kept {len(report.dropped)} clearly broken candidate(s) from annotators"
        + (f" ({named}); their slots were made again in {len(report.runs) - 1} more run(s)" if named else "")
        + "; `medgen check` shows every finding"
    )
