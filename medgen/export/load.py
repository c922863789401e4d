"""Load an export back as a ``datasets`` dataset: a local export folder, or a Hub id at a version tag.

The one module of the export stage that later stages (training, evaluation) import: it needs no
workspace.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from medgen.errors import MedgenError
from medgen.export.layout import DATA_DIR, SPLITS

if TYPE_CHECKING:
    import datasets


def _local_export(path: Path, revision: str | None) -> Path:
    versioned = [path / revision, path / "exports" / revision] if revision else []
    for folder in [*versioned, path]:
        if (folder / DATA_DIR).is_dir():
            return folder
    raise MedgenError(
        f"{path} is not a medgen export (no {DATA_DIR}/ folder): pass exports/<version> or a Hub id ORG/NAME"
    )


def load_export(
    dataset: str | Path, split: str | None = None, revision: str | None = None
) -> datasets.DatasetDict | datasets.Dataset:
    """Load an export as a ``datasets`` dataset: a local export folder, or a Hub id at ``revision`` (a tag).

    Args:
        dataset: ``exports/<version>`` (or ``exports`` / a workspace with ``revision`` = version), or ``ORG/NAME``.
        split: ``train``, ``validation`` or ``test``; None loads every split as a DatasetDict.
        revision: A version tag (``v1.1``) or commit on the Hub, or a version under a local exports folder.

    Returns:
        The split as a Dataset, or all splits as a DatasetDict; ``images`` decode as PIL images.
    """
    import datasets

    path = Path(dataset).expanduser()
    if path.exists():
        folder = _local_export(path, revision)
        data_files = {
            s: str(folder / DATA_DIR / f"{s}-*.parquet")
            for s in SPLITS
            if any((folder / DATA_DIR).glob(f"{s}-*.parquet"))
        }
        if split is not None and split not in data_files:
            raise MedgenError(f"{folder} has no {split!r} split; it has {', '.join(data_files) or 'none'}")
        return datasets.load_dataset("parquet", data_files=data_files, split=split)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(dataset)):
        raise MedgenError(f"{dataset} is neither an existing export folder nor a Hub dataset id ORG/NAME")
    return datasets.load_dataset(str(dataset), split=split, revision=revision)
