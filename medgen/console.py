"""CLI plumbing shared by every stage's sub-app: one-line errors, the workspace option, progress."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from medgen.errors import MedgenError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="MEDGEN_WORKSPACE",
        help="Workspace folder (default: $MEDGEN_WORKSPACE or the current folder).",
        show_default=False,
    ),
]


EndpointOpt = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible API base URL (e.g. http://localhost:8000/v1); key from $OPENAI_API_KEY."
    ),
]
"""``--endpoint`` of the commands that ask a model through an API: eval, screen, cot."""


MinAnnotatorsOpt = Annotated[
    int | None,
    typer.Option(
        help="Valid votes a source needs (default: the overlap it was pushed with).", show_default=False
    ),
]


def _clean_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MedgenError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class App(typer.Typer):
    """A Typer app whose commands print a user error in one line and exit 1, without a traceback."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("rich_markup_mode", "rich")
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:  # type: ignore[override]
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(_clean_errors(fn))
            return fn

        return decorator


class RateColumn(ProgressColumn):
    """Items per second; the unit comes from the task's ``unit`` field (default 'it')."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")


def progress(transient: bool = False) -> Progress:
    """A progress bar with count, rate and ETA. Pass ``unit=`` to ``add_task`` to name the items."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
