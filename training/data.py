"""Load a split of an exported benchmark for training, refusing data the trainers cannot use."""

from __future__ import annotations

from typing import Any

from medgen.errors import MedgenError
from schemas.taxonomy import NUM_CANDIDATES

SFT_COLUMNS = ("images", "prompt", "completion")
GRPO_COLUMNS = ("images", "prompt", "answer")


def load_split(dataset: str | None, split: str, revision: str | None = None) -> Any:  # -> datasets.Dataset
    """One split of an export folder or a Hub dataset id (at ``revision``, e.g. a version tag)."""
    if not dataset:
        raise MedgenError(
            "no dataset: pass --dataset EXPORT_FOLDER or a Hub dataset id (or set it in the recipe)"
        )
    from medgen.export import load_export

    return load_export(dataset, split, revision)


def check_columns(dataset: Any, required: tuple[str, ...], name: str) -> None:
    """Refuse a dataset that lacks a column the trainer needs, or whose rows do not hold five images."""
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        raise MedgenError(
            f"dataset {name} lacks column(s) {', '.join(missing)} (has: {', '.join(dataset.column_names)}); "
            "export it with `medgen export`"
        )
    if len(dataset) == 0:
        raise MedgenError(f"dataset {name} has no rows in this split")
    row = dataset[0]
    placeholders = sum(1 for part in row["prompt"][0]["content"] if part.get("type") == "image")
    if len(row["images"]) != NUM_CANDIDATES + 1 or placeholders != len(row["images"]):
        raise MedgenError(
            f"dataset {name}: a row must hold {NUM_CANDIDATES + 1} images and one image placeholder per image "
            f"in its prompt; got {len(row['images'])} images and {placeholders} placeholders"
        )
