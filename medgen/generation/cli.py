"""`medgen generate`: parse flags (over an optional YAML config), run generation, print the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medgen.console import WorkspaceOpt, console, progress


def generate_command(
    workspace: WorkspaceOpt = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML generation config; flags override its fields.")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend", "-b", help="diffusers (a diffusion model) or synthetic (CPU, known defects)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="diffusers checkpoint: Hub id or local folder.")] = None,
    revision: Annotated[str | None, typer.Option(help="Hub branch, tag or commit of --model.")] = None,
    recipe: Annotated[str | None, typer.Option(help="background | outpaint | img2img.")] = None,
    candidates: Annotated[
        int | None, typer.Option("--candidates", "-n", help="Candidates per source (default 4).")
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--sources", help="Only these sources (id, id prefix or file name); repeatable."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many sources (of those missing candidates).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Base seed (default 0).")] = None,
    resolution: Annotated[
        int | None,
        typer.Option(
            help="Long side the model works at, pixels; with --backend synthetic, the candidates' side (default 512)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps (default 30).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Guidance scale (default 7.5).")] = None,
    strength: Annotated[
        float | None, typer.Option(help="Denoising strength in (0, 1] (default 0.99).")
    ] = None,
    negative_prompt: Annotated[str | None, typer.Option(help="Negative prompt ('' for none).")] = None,
    aspect: Annotated[
        str | None, typer.Option("--aspect", help="outpaint: target aspect ratio W:H (default 4:3).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cuda | mps | cpu.")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto | fp16 | bf16 | fp32.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per pipeline call (default 4).")] = None,
    offload: Annotated[
        bool | None, typer.Option("--offload/--no-offload", help="Model CPU offload (small GPUs).")
    ] = None,
    vae_tiling: Annotated[
        bool | None, typer.Option("--vae-tiling/--no-vae-tiling", help="Tiled VAE decoding.")
    ] = None,
    vae_slicing: Annotated[
        bool | None, typer.Option("--vae-slicing/--no-vae-slicing", help="Sliced VAE decoding.")
    ] = None,
    remove_orphans: Annotated[
        bool,
        typer.Option(
            help="First delete store files no catalog row references (only while nothing else uses the workspace)."
        ),
    ] = False,
) -> None:
    """Make the missing candidates of every source (4 each by default); rerun to resume.

    Under `torchrun --nproc_per_node N` or `accelerate launch` each rank generates its own share of
    the sources; rank 0 merges them into the catalog.
    """
    from medgen.generation.config import load_config
    from medgen.generation.distributed import ranks
    from medgen.generation.generate import generate, remove_orphan_files
    from medgen.workspace import open_workspace

    settings = load_config(
        config,
        backend=backend,
        model=model,
        revision=revision,
        recipe=recipe,
        candidates=candidates,
        seed=seed,
        resolution=resolution,
        steps=steps,
        guidance=guidance,
        strength=strength,
        negative_prompt=negative_prompt,
        outpaint_aspect=aspect,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        offload=offload,
        vae_tiling=vae_tiling,
        vae_slicing=vae_slicing,
    )
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
    if report.failures and report.rank == 0:  # rank 0 lists the whole run's failures
        raise typer.Exit(1)
