"""Bundled sample sources: distinct, deterministic, valid for `sources add`, with usable masks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medgen.cli import app
from medgen.errors import MedgenError
from medgen.sources.ingest import add_sources, product_mask
from medgen.sources.samples import draw_sample, write_samples


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("samples")
    write_samples(directory, 24, seed=0)
    return directory


def _digests(directory: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())]


@pytest.mark.slow  # ~10 s on 2 busy cores: draws and ingests 24 photos
def test_all_24_samples_are_added_without_duplicates(samples_dir: Path, workspace) -> None:
    report = add_sources(workspace, [samples_dir])
    assert report.summary() == {"added": 24, "duplicate": 0, "rejected": 0}
    sources = workspace.catalog.sources()
    assert sum(s.mask_from_alpha for s in sources) == 8  # every third sample is an RGBA cut-out
    assert {s.original_name.rsplit(".", 1)[1] for s in sources} == {"png", "jpg"}


def test_samples_are_deterministic_per_seed(samples_dir: Path, tmp_path: Path) -> None:
    again = write_samples(tmp_path / "again", 6, seed=0)  # drawn in order: the first 6 of the 24
    assert [p.name for p in again] == sorted(p.name for p in samples_dir.iterdir())[:6]
    assert _digests(tmp_path / "again") == _digests(samples_dir)[:6]
    write_samples(tmp_path / "other", 3, seed=1)
    assert not set(_digests(tmp_path / "other")) & set(_digests(samples_dir))


def test_samples_vary_in_size_and_colour(samples_dir: Path) -> None:
    images = [Image.open(p) for p in sorted(samples_dir.iterdir())]
    assert len({im.size for im in images}) >= 3
    assert {im.mode for im in images} == {"RGB", "RGBA"}
    means = np.array([np.asarray(im.convert("RGB"), np.float32).mean(axis=(0, 1)) for im in images])
    assert means.std(axis=0).min() > 2.0


def test_opencv_mask_finds_the_drawn_product() -> None:
    ious = []
    for seed in range(12):
        image, truth = draw_sample(np.random.default_rng(seed), cutout=False)
        found, true = np.asarray(product_mask(image)) > 0, np.asarray(truth) > 0
        ious.append((found & true).sum() / (found | true).sum())
    assert np.median(ious) > 0.9 and min(ious) > 0.7, [round(i, 2) for i in ious]


def test_cutout_alpha_is_the_product(tmp_path: Path) -> None:
    image, truth = draw_sample(np.random.default_rng(3), cutout=True)
    assert image.mode == "RGBA"
    assert np.array_equal(np.asarray(image.getchannel("A")) >= 128, np.asarray(truth) > 0)
    assert 0.03 < (np.asarray(truth) > 0).mean() < 0.6


def test_samples_command(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["samples", str(tmp_path / "s"), "-n", "3", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 sample photos" in result.output
    assert len(list((tmp_path / "s").iterdir())) == 3


def test_bad_count_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MedgenError, match="at least 1"):
        write_samples(tmp_path, 0)
