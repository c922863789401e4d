"""Errors a user can cause. The CLI prints them in one line and exits non-zero."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class MedgenError(Exception):
    """A problem the user can fix: bad input, bad config, missing server or token."""


def one_line(error: BaseException, kind: bool = False, limit: int = 500) -> str:
    """An error's message on one line, its lines folded, at most ``limit`` characters (its type's name when it
    has no message); ``kind`` puts the type's name first."""
    text = " ".join(str(error).split())[:limit]
    if kind:
        return f"{type(error).__name__}: {text or 'no detail'}"
    return text or type(error).__name__


def flag_of(field: str, config: Any = None) -> str:
    """The command-line flag that sets ``field``: its own first flag when its config declares one
    (``Field(json_schema_extra={"flags": [...]})``), else ``--field-name``."""
    info = getattr(config, "model_fields", {}).get(field)
    extra = getattr(info, "json_schema_extra", None)
    if isinstance(extra, dict) and extra.get("flags"):
        return str(extra["flags"][0])
    return "--" + field.replace("_", "-")


def config_error(error: ValidationError, context: str = "", options: bool | type = False) -> MedgenError:
    """One line naming each invalid field and why, e.g. ``invalid export config: version: must start ...``.

    With ``options`` (True, or the config class whose fields declare their flags), fields are named as
    the CLI flags that set them (``gold_rate`` -> ``--gold-rate``).
    """
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if options and where:
            where = flag_of(str(item["loc"][0]), options if isinstance(options, type) else None)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    prefix = f"{context}: " if context else ""
    return MedgenError(prefix + "; ".join(problems))
