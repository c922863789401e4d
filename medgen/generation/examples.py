"""Example images of each defect the synthetic backend can inject, for the annotators' guideline.

Made by the synthetic backend itself from one drawn sample product at a fixed seed: a clean
candidate and, for each defect it knows, the same scene with only that defect. Generated, never
drawn by hand, and the same on every machine. ``medgen generate`` writes them once into the
workspace's ``guideline/`` folder; the annotation stage embeds the ones it finds in the project
instructions (the stages share files, not imports).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgen.files import atomic_write_bytes
from medgen.generation.backends.synthetic import cut_out, render_candidate
from medgen.generation.config import DEFECT_KINDS
from medgen.sources.samples import draw_sample

CLEAN = "clean"
SIZE = 256
SEED = 11


def write_defect_examples(folder: Path, size: int = SIZE, seed: int = SEED) -> list[Path]:
    """``<folder>/<tag>.jpg`` for every injectable tag plus ``clean.jpg``; existing files are kept."""
    import io

    image, mask = draw_sample(np.random.default_rng(seed))
    product = cut_out(image, mask)
    written = []
    for name in (CLEAN, *DEFECT_KINDS):
        path = folder / f"{name}.jpg"
        if not path.exists():
            rendered = render_candidate(product, seed, {} if name == CLEAN else {name: 1.0}, size=size)
            buffer = io.BytesIO()
            rendered.image.convert("RGB").save(buffer, format="JPEG", quality=82)
            atomic_write_bytes(path, buffer.getvalue())
        written.append(path)
    return written
