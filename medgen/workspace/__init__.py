"""The workspace: one folder with the SQLite catalog and the content-addressed image store."""

from medgen.workspace.workspace import Workspace, init_workspace, open_workspace

__all__ = ["Workspace", "init_workspace", "open_workspace"]
