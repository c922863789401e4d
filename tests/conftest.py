"""Fixtures shared by every test package: a fresh workspace, the CLI runner, a few product photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from medgen.workspace import Workspace, init_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def product_photo(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A plain product shot: a coloured box with a label band on a light, slightly noisy backdrop."""
    rng = np.random.default_rng(seed)
    w, h = size
    background = np.full((h, w, 3), 235, np.float32) + rng.normal(0, 2, (h, w, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    bw, bh = int(w * rng.uniform(0.3, 0.5)), int(h * rng.uniform(0.4, 0.7))
    x0, y0 = int(rng.integers(w // 10, w - bw - w // 10)), int(rng.integers(h // 10, h - bh - h // 10))
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=colour)
    band = tuple(int(c) for c in rng.integers(150, 255, 3))
    draw.rectangle([x0 + 4, y0 + bh // 3, x0 + bw - 4, y0 + bh // 2], fill=band)
    for i in range(int(rng.integers(2, 6))):
        tx = x0 + 8 + i * max(6, bw // 7)
        draw.rectangle([tx, y0 + bh // 3 + 6, tx + 4, y0 + bh // 3 + 12], fill=(10, 10, 10))
    return image


@pytest.fixture
def photos_dir(tmp_path: Path) -> Path:
    """Six distinct product photos as PNG and JPEG files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        product_photo(seed=100 + i).save(folder / f"product_{i}.{'png' if i % 2 else 'jpg'}", quality=95)
    return folder
