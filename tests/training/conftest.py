"""Fixtures for training tests: the tiny Qwen2.5-VL (built once) and a small export with five images per row."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from schemas import LETTERS
from schemas.models import BenchmarkSample, CandidateLabel
from schemas.taxonomy import TAXONOMY
from tests.training.eval_data import source_samples


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "model")


def benchmark_samples(num_sources: int, seed: int = 0) -> list[tuple[BenchmarkSample, list[bytes]]]:
    """Validated samples with random labels and five small PNG images per source."""
    rng = np.random.default_rng(seed)
    tags = [tag for d in TAXONOMY.dimensions for tag in d.tag_ids()]
    samples = []
    for s in range(num_sources):
        source_id = f"source-{seed}-{s}"
        labels = []
        for _ in LETTERS:
            if rng.random() < 0.4:
                labels.append(CandidateLabel(acceptable=True))
            else:
                picks = rng.choice(len(tags), size=int(rng.integers(1, 3)), replace=False)
                labels.append(CandidateLabel(defects=tuple(tags[i] for i in picks), acceptable=False))
        images = []
        for _ in range(5):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buffer, format="PNG")
            images.append(buffer.getvalue())
        samples += [(sample, images) for sample in source_samples(source_id, labels, num_annotators=1)]
    return samples


def write_export(folder: Path, splits: dict[str, int], drop: tuple[str, ...] = ()) -> Path:
    """An export folder (data/<split>-*.parquet with the export's features) of ``splits[name]`` sources each."""
    import datasets

    from medgen.export.parquet import dataset_features, sample_row

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for seed, (split, num_sources) in enumerate(splits.items()):
        rows = [sample_row(sample, images) for sample, images in benchmark_samples(num_sources, seed)]
        dataset = datasets.Dataset.from_list(rows, features=dataset_features())
        if drop:
            dataset = dataset.remove_columns(list(drop))
        dataset.to_parquet(folder / "data" / f"{split}-00000-of-00001.parquet")
    return folder


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / "v1", {"train": 3, "validation": 1})
