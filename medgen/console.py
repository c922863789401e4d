"""CLI plumbing shared by every stage's sub-app: one-line errors, options from configs, progress."""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

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

from medgen.errors import MedgenError, config_error

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


C = TypeVar("C")
SCALARS = (str, int, float, Path)


def config_options(
    config: type[Any], skip: Iterable[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per field of the pydantic ``config``: declared once, there.

    Each option takes the field's flags (``Field(json_schema_extra={"flags": ["--samples", "-k"]})``,
    else ``--field-name``), its description as help, its default (or the class's ``DEFAULTS``) as the
    shown default; a ``Literal`` becomes a choice, a list a comma-separated value ('none' for an empty
    one), a bool a ``--flag/--no-flag`` pair. Fields in ``skip``, fields the command declares itself
    (a positional argument, a computed default) and fields no flag can hold (mappings, nested models)
    are left out. The command receives the options given on the command line as ``options`` (field ->
    value) and builds its config with ``build_config``: defaults stay the config's.
    """
    defaults = getattr(config, "DEFAULTS", {})

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        declared = set(own.parameters) | set(skip)
        added = [
            option
            for name, info in config.model_fields.items()
            if name not in declared and (option := _option(name, info, _default(defaults, name, info)))
        ]
        lists = {option.name for option in added if _is_list(config.model_fields[option.name].annotation)}

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            given = {option.name: kwargs.pop(option.name, None) for option in added}
            options = {
                name: _listed(value) if name in lists else value
                for name, value in given.items()
                if value is not None
            }
            return fn(**kwargs, options=options)

        params = [p for p in own.parameters.values() if p.name != "options"]
        command.__signature__ = own.replace(parameters=[*params, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {}  # Typer reads the signature above, not the wrapped function's strings
        del command.__wrapped__  # type: ignore[attr-defined]
        return command

    return decorator


def build_config(config: type[C], options: dict[str, Any], **fixed: Any) -> C:
    """``config`` from the options given on the command line and the command's own values, validated;
    an invalid value is a one-line error naming its flag."""
    from pydantic import ValidationError

    try:
        return config.model_validate({**options, **fixed})  # type: ignore[attr-defined,no-any-return]
    except ValidationError as error:
        raise config_error(error, options=config) from None


def _option(name: str, info: Any, default: Any) -> inspect.Parameter | None:
    """The Typer option of one field, or None when no flag can hold it."""
    kind, optional = _unwrap(info.annotation)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    flags = list(extra.get("flags") or ["--" + name.replace("_", "-")])
    settings: dict[str, Any] = {"help": info.description, "show_default": _shown(default)}
    if kind is bool:
        flags[0] = f"{flags[0]}/--no-{flags[0].removeprefix('--')}"
    elif get_origin(kind) is Literal:
        pass  # a choice: Typer reads Literal itself
    elif _is_list(kind):
        kind = str
    elif kind not in SCALARS:
        return None
    annotation = Annotated[kind | None, typer.Option(*flags, **settings)]  # type: ignore[operator]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _default(defaults: dict[str, Any], name: str, info: Any) -> Any:
    """A field's default as the config applies it: the class's ``DEFAULTS``, its default or factory."""
    if name in defaults:
        return defaults[name]
    return info.get_default(call_default_factory=True) if not info.is_required() else None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _is_list(annotation: Any) -> bool:
    kind, _ = _unwrap(annotation)
    return get_origin(kind) in (list, tuple) and all(
        arg in SCALARS or get_origin(arg) is Literal for arg in get_args(kind) if arg is not Ellipsis
    )


def _listed(value: str) -> list[str]:
    """A comma-separated option as its list ('none': an empty one)."""
    return (
        [] if value.strip().lower() == "none" else [item.strip() for item in value.split(",") if item.strip()]
    )


def _shown(default: Any) -> str | bool:
    from pydantic_core import PydanticUndefined

    if default is None or default is PydanticUndefined:
        return False
    if isinstance(default, (list, tuple)):
        return ",".join(str(item) for item in default) or "none"
    return str(default)


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
