"""Errors a user can cause. The CLI prints them in one line and exits non-zero."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class MedgenError(Exception):
    """A problem the user can fix: bad input, bad config, missing server or token."""


def config_error(error: ValidationError, context: str = "", options: bool = False) -> MedgenError:
    """One line naming each invalid field and why, e.g. ``invalid export config: version: must start ...``.

    With ``options``, fields are named as the CLI flags that set them (``gold_rate`` -> ``--gold-rate``).
    """
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if options and where:
            where = "--" + str(item["loc"][0]).replace("_", "-")
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    prefix = f"{context}: " if context else ""
    return MedgenError(prefix + "; ".join(problems))
