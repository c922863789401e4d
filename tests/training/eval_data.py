"""Handcrafted evaluation data: fixed labels, so every answer and every baseline score is known by hand."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from medgen.export.samples import SourceLabels, build_source_samples
from schemas.models import BenchmarkSample, Candidate, CandidateLabel, GenerationProvenance

API_KEY = "sk-test-0123456789-secret"

OK = CandidateLabel(acceptable=True)


def bad(tag: str) -> CandidateLabel:
    return CandidateLabel(defects=(tag,), acceptable=False)


# Fixed labels, so every answer (and every baseline's score) can be worked out by hand.
TRAIN_SOURCES = {
    "r1": [bad("product_warped"), OK, OK, OK],  # appearance A; publishable B,C,D
    "r2": [bad("color_shifted"), OK, bad("shadow_missing"), OK],  # appearance A; lighting C; publishable B,D
    "r3": [
        OK,
        bad("shadow_direction_wrong"),
        OK,
        bad("floating"),
    ],  # lighting B; placement D; publishable A,C
}
TEST_SOURCES = {
    "t1": [bad("product_warped"), OK, bad("shadow_missing"), OK],  # appearance A; lighting C; publishable B,D
    "t2": [
        bad("floating"),
        bad("floating"),
        OK,
        bad("visible_seam"),
    ],  # placement A,B; extension D; publishable C
    "t3": [OK, bad("text_garbled"), OK, OK],  # appearance B; publishable A,C,D
}


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def source_samples(
    source_id: str,
    labels: list[CandidateLabel],
    num_annotators: int = 3,
    votes: dict[str, list[CandidateLabel]] | None = None,
) -> list[BenchmarkSample]:
    """The questions one source makes, built by the export stage's own builder (no copy of its logic)."""
    candidates = [
        Candidate(
            id=f"{source_id}-{slot}",
            source_id=source_id,
            slot=slot,
            image_key=f"images/{slot}.png",
            provenance=GenerationProvenance(
                backend="synthetic", model_id="synthetic", recipe="background", seed=slot
            ),
        )
        for slot in range(len(labels))
    ]
    images = [f"{i}.png" for i in range(len(labels) + 1)]
    return build_source_samples(
        source_id,
        images,
        candidates,
        SourceLabels(
            tuple(labels), num_annotators, 1.0, {name: tuple(vote) for name, vote in (votes or {}).items()}
        ),
        "v1",
    )


Votes = dict[str, dict[str, list[CandidateLabel]]]
"""source id -> annotator -> that annotator's labels."""


def sources_samples(
    sources: dict[str, list[CandidateLabel]], votes: Votes | None = None
) -> list[tuple[BenchmarkSample, list[bytes]]]:
    """Validated samples (one per dimension with an answer) and five PNGs per source."""
    samples = []
    for index, (source_id, labels) in enumerate(sources.items()):
        images = [png((40 * index % 256, 50 * i, 120)) for i in range(5)]
        built = source_samples(source_id, labels, votes=(votes or {}).get(source_id))
        samples += [(sample, images) for sample in built]
    return samples


def write_eval_export(
    folder: Path, splits: dict[str, dict[str, list[CandidateLabel]]], votes: Votes | None = None
) -> Path:
    """An export folder in the export stage's layout and features (data/<split>-*.parquet)."""
    import datasets

    from medgen.export.parquet import dataset_features, sample_row

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, sources in splits.items():
        rows = [sample_row(sample, images) for sample, images in sources_samples(sources, votes)]
        datasets.Dataset.from_list(rows, features=dataset_features()).to_parquet(
            folder / "data" / f"{split}-00000-of-00001.parquet"
        )
    return folder
