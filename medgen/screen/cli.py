"""`medgen screen`: verdicts, flagged dimensions and reasons for new candidates, from a trained screener."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medgen.console import WorkspaceOpt, build_config, config_options, console, progress
from medgen.screen.config import ScreenConfig

if TYPE_CHECKING:
    from medgen.workspace import Workspace


@config_options(ScreenConfig)
def screen_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="A source photo, then its candidate images (any number, screened four at a time). "
            "Without files: the workspace's candidates that nobody has annotated yet.",
            show_default=False,
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-o", help="Where results go (default: <workspace>/screen, or ./screen)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Screen at most this many workspace sources.")] = None,
    workspace: WorkspaceOpt = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Screen new generations: publishable or not, which dimensions are defective and why, with a confidence."""
    from medgen.screen.screen import groups_from_files, groups_from_workspace, screen

    if files:
        source, *candidates = files
        groups = groups_from_files(source, candidates)
        default_out = Path("screen")
    else:
        from medgen.workspace import open_workspace

        with open_workspace(workspace) as ws:
            groups = groups_from_workspace(ws, limit)
            default_out = ws.root / "screen"
    config = build_config(ScreenConfig, options or {}, output_dir=output_dir or default_out)
    with progress() as bar:
        task = bar.add_task("screening", total=None, unit="answers")
        results, paths = screen(
            groups, config, lambda done, total: bar.update(task, completed=done, total=total)
        )
    counts = {v: sum(r.verdict == v for r in results) for v in ("publishable", "reject", "unknown")}
    console.print(
        f"{len(results)} candidates: {counts['publishable']} publishable, {counts['reject']} rejected, "
        f"{counts['unknown']} unknown (no readable answer)"
    )
    for name, path in paths.items():
        console.print(f"{name}: {path}", highlight=False)


def screen_for_prefill(workspace: Workspace, model: str, endpoint: str | None = None) -> Path:
    """``annotate push --predictions model:CHECKPOINT`` (or ``endpoint:NAME``): screen the sources nobody
    annotated, 3 samples each; the ``annotation.prefill.Screener`` the `medgen` command hands to push."""
    from medgen.screen.screen import groups_from_workspace, screen

    config = ScreenConfig(
        model=model, endpoint=endpoint, samples=3, output_dir=workspace.root / "screen" / "prefill"
    )
    groups = groups_from_workspace(workspace)
    with progress(transient=True) as bar:
        task = bar.add_task("screening for pre-fill", total=None, unit="answers")
        _, paths = screen(groups, config, lambda done, total: bar.update(task, completed=done, total=total))
    return paths["jsonl"]
