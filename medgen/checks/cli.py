"""`medgen check`: automatic checks of candidates against their originals, on CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medgen.checks.config import CheckConfig
from medgen.console import WorkspaceOpt, build_config, config_options, console, progress


@config_options(CheckConfig)
def check_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="SOURCE CANDIDATE...: a photo and its candidates (none: the workspace's).",
            show_default=False,
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write checks.jsonl, checks.csv and index.html here."),
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--sources", help="Only these workspace sources (ids).", show_default=False),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Measure again what was measured with these settings.")
    ] = False,
    workspace: WorkspaceOpt = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Check candidates against their originals: product shape, colour, print, crop, scale, occlusion, seams."""
    from medgen.checks.check import check_files, check_workspace

    config = build_config(CheckConfig, options or {}, output_dir=output_dir)
    if files:
        source, *candidates = files
        if not output_dir:
            config = config.model_copy(update={"output_dir": Path("checks")})
        _, report = check_files(source, candidates, config)
    else:
        from medgen.workspace import open_workspace

        with open_workspace(workspace) as ws, progress() as bar:
            task = bar.add_task("checking", total=None, unit="candidates")
            config = config.model_copy(update={"output_dir": output_dir or ws.reports_dir / "checks"})
            shown = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
            report = check_workspace(ws, config, sources, force, shown)
    found = ", ".join(f"{tag} {n}" for tag, n in sorted(report.tags.items(), key=lambda kv: -kv[1])) or "none"
    console.print(
        f"{report.checked} candidates measured, {report.reused} already were; {report.with_findings} with findings"
        f" ({found})"
    )
    if report.outputs:
        console.print("written: " + ", ".join(str(path) for path in report.outputs.values()), highlight=False)
