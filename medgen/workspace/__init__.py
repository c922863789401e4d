"""The workspace: one folder with the SQLite catalog and the content-addressed image store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medgen.workspace.workspace import Workspace, init_workspace, open_workspace

__all__ = ["Workspace", "init_workspace", "open_workspace"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `medgen --help` (which imports medgen.workspace.cli) does not load SQLite and PIL.
    if name in __all__:
        from medgen.workspace import workspace

        return getattr(workspace, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
