"""A medgen workspace: one folder with the catalog, the image store and every stage's outputs.

Layout::

    DIR/workspace.json      marker + format version
    DIR/catalog.sqlite      sources, candidates, runs, Label Studio tasks, annotations, exports
    DIR/served/images/      content-addressed image store (PNG); ``served/`` is the only folder a
                            server started by medgen may serve (Label Studio's document root)
    DIR/reports/            rejection, generation and annotation reports
    DIR/runs/               generation shard manifests
    DIR/labelstudio/        Label Studio's data dir (annotate serve)
    DIR/guideline/          example images of each defect, for the annotators' guideline (generate)
    DIR/exports/<version>/  exported dataset versions
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.workspace.catalog import Catalog
from medgen.workspace.store import ImageStore

MARKER = "workspace.json"
ENV_VAR = "MEDGEN_WORKSPACE"
FORMAT = 2
"""Layout version: 2 moved the image store from ``images/`` to ``served/images/``."""
SERVED = "served"
"""The one folder of a workspace that Label Studio may serve: the image store, nothing secret."""


@dataclass
class Workspace:
    root: Path
    catalog: Catalog
    store: ImageStore

    @property
    def served_dir(self) -> Path:
        """What a server may read: the image store and nothing else (no catalog, no credentials)."""
        return self.root / SERVED

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def labelstudio_dir(self) -> Path:
        return self.root / "labelstudio"

    @property
    def guideline_dir(self) -> Path:
        return self.root / "guideline"

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counts(self) -> dict[str, int]:
        """Counts per stage, as ``medgen status`` shows them."""
        counts = self.catalog.counts()
        return {
            "sources": counts["sources"],
            "candidates": counts["candidates"],
            "sources_complete": counts["sources_complete"],
            "generation_failures": counts["generation_failures"],
            "ls_projects": counts["ls_projects"],
            "tasks": counts["tasks"],
            "annotations": counts["annotations"],
            "annotations_valid": counts["annotations_valid"],
            "annotations_rejected": counts["annotations"] - counts["annotations_valid"],
            "exports": counts["exports"],
        }


def init_workspace(root: Path) -> Workspace:
    """Create a workspace in ``root`` (or open it if it already is one)."""
    root = root.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise MedgenError(f"{root} exists and is not a folder")
    if (root / MARKER).exists():
        return open_workspace(root)
    if root.exists() and any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise MedgenError(f"{root} is not empty and is not a medgen workspace: choose an empty or new folder")
    for sub in (f"{SERVED}/images", "reports", "runs", "exports"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    catalog = Catalog(root / "catalog.sqlite")
    marker = {"format": FORMAT, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(root / MARKER, json.dumps(marker, indent=2) + "\n")
    return Workspace(root=root, catalog=catalog, store=ImageStore(root / SERVED))


def open_workspace(root: Path | None = None) -> Workspace:
    """Open the workspace at ``root``, ``$MEDGEN_WORKSPACE`` or the current folder."""
    if root is None:
        root = Path(os.environ.get(ENV_VAR) or ".")
    root = root.expanduser().resolve()
    if not (root / MARKER).is_file():
        raise MedgenError(f"{root} is not a medgen workspace (no {MARKER}): run `medgen init {root}` first")
    _move_store(root)
    return Workspace(root=root, catalog=Catalog(root / "catalog.sqlite"), store=ImageStore(root / SERVED))


def _move_store(root: Path) -> None:
    """Move a format-1 workspace's image store from ``images/`` to ``served/images/`` (one atomic rename).

    Store keys (``images/<2 hex>/<sha256>.<ext>``) are relative to the store's root, so they, and the
    local-files URLs of tasks already in Label Studio, stay the same; ``annotate serve`` points the
    server's storages at the new folder. Safe when several processes open the workspace at once.
    """
    old, new = root / "images", root / SERVED / "images"
    if new.exists():
        if old.is_dir():
            raise MedgenError(
                f"{root} holds both images/ and {SERVED}/images/: move the files of images/ into "
                f"{SERVED}/images/ (same sub-folders), then remove images/"
            )
        return
    if not old.is_dir():
        return
    new.parent.mkdir(exist_ok=True)
    try:
        os.rename(old, new)
    except FileNotFoundError:  # another process moved it first
        return
    marker = json.loads((root / MARKER).read_text())
    atomic_write_text(root / MARKER, json.dumps({**marker, "format": FORMAT}, indent=2) + "\n")
