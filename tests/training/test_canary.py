"""The alignment canary: images, answer letters and labels line up from generation to evaluation.

Every defective candidate carries an unmistakable mark (a solid red square over its bottom-right
quarter: the image's last tokens, the farthest from its opening label) and has exactly one defect
(``color_shifted``), so the answer to the appearance question is the letter of the marked image, and the
publishable question's is the other three. The data go through
medgen's own stages: the synthetic backend inside ``run_generation``, the catalog, ``export_dataset``
with injected labels, ``train sft`` with the tiny recipe, ``medgen eval``. A tiny random-weight model
learns the mark in a few hundred steps, so it scores far above chance, unless some stage puts
the images in another order than the answers (then it cannot beat chance): the second test shows the
check falls when the test split's images are reordered.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageDraw

from medgen.generation.backends.base import GeneratedImage, GenerationRequest
from medgen.generation.backends.synthetic import SyntheticBackend
from medgen.generation.config import SyntheticOptions

pytestmark = pytest.mark.slow

SOURCES = 80
STEPS = 500
LEARNING_RATE = 3e-3
"""Measured with a top-left mark: at 1e-2 seed 0 stayed on the answers' prior (200 and 400 steps);
at 3e-3, 500 steps learnt it for seeds 0 and 1, 300 steps for one seed of four."""
MARK = (255, 0, 0)


class MarkedSynthetic(SyntheticBackend):
    """The synthetic backend, with a solid red square painted on every candidate that has a defect."""

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        made = super().generate(requests)
        for image in made:
            if image.injected_defects:
                side = image.image.width
                ImageDraw.Draw(image.image).rectangle([side // 2, side // 2, side, side], fill=MARK)
        return made


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The marked export and the SFT model trained on it."""
    from medgen.export.config import ExportConfig
    from medgen.export.dataset import export_dataset
    from medgen.generation.generate import run_generation
    from medgen.sources.ingest import add_sources
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace
    from training.config import load_config
    from training.stages import config_class, train
    from training.tiny import build_tiny_vlm

    root = tmp_path_factory.mktemp("canary")
    workspace = init_workspace(root / "workspace")
    add_sources(workspace, write_samples(root / "photos", SOURCES, seed=0))
    options = SyntheticOptions(
        resolution=128, defective_per_source=(1, 1), max_defects_per_candidate=1, defects=("color_shifted",)
    )
    run_generation(workspace, MarkedSynthetic(options), config=options)
    exported = export_dataset(
        workspace,
        ExportConfig(
            version="v1", labels="injected", rationale="template", train=0.6, validation=0.1, test=0.3
        ),
    )
    overrides = {
        "dataset": str(exported.path),
        "model_name_or_path": str(build_tiny_vlm(root / "model", seed=0)),
        "output_dir": str(root / "sft"),
        "max_steps": STEPS,
        "save_steps": STEPS,
        "learning_rate": LEARNING_RATE,
    }
    model = train("sft", load_config(config_class("sft"), "tiny/demo", "sft", overrides))
    return exported.path, model


def _accuracy(export: Path, model: Path, out: Path) -> tuple[float, int]:
    from training.evaluation.config import EvalConfig
    from training.evaluation.evaluate import run_eval

    results = run_eval(
        EvalConfig(model=str(model), dataset=str(export), output_dir=out, max_new_tokens=160, bootstrap=0)
    )
    scores = results.models[0].scores["all"]
    assert results.models[0].kind == "checkpoint" and scores.format_rate == 1.0
    return scores.accuracy, scores.n


def test_the_marked_candidates_are_learnt(canary: tuple[Path, Path], tmp_path: Path) -> None:
    export, model = canary
    accuracy, n = _accuracy(export, model, tmp_path)
    assert n >= 30
    # chance: 1 in 4 for either question (one marked letter, or the three others)
    assert accuracy >= 0.8, (
        f"CANARY: images and answers misaligned somewhere ({accuracy:.0%} on {n} questions)"
    )


def test_the_canary_falls_when_images_are_reordered(canary: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    export, model = canary
    moved = tmp_path / "reordered"
    shutil.copytree(export, moved)
    (test_file,) = (moved / "data").glob("test-*.parquet")
    table = pq.read_table(test_file)
    rows = table.to_pylist()
    for row in rows:  # the original first, then D, A, B, C: every candidate's image under another letter
        source, *candidates = row["images"]
        row["images"] = [source, candidates[-1], *candidates[:-1]]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), test_file)
    accuracy, n = _accuracy(moved, model, tmp_path / "eval")
    assert accuracy <= 0.35, f"the canary did not notice reordered images ({accuracy:.0%} on {n} questions)"
