"""Handcrafted evaluation data: fixed labels, so every answer and every baseline score is known by hand."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from schemas.models import (
    BenchmarkSample,
    CandidateLabel,
    GenerationProvenance,
    answer_letters,
    format_answer,
    sample_id,
)
from schemas.prompts import completion_messages, prompt_messages, question_text, rationale_text
from schemas.taxonomy import QUESTION_DIMENSIONS

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


def sources_samples(sources: dict[str, list[CandidateLabel]]) -> list[tuple[BenchmarkSample, list[bytes]]]:
    """Validated samples (one per dimension with an answer) and five PNGs per source."""
    samples = []
    for index, (source_id, labels) in enumerate(sources.items()):
        images = [png((40 * index % 256, 50 * i, 120)) for i in range(5)]
        provenance = [
            GenerationProvenance(backend="synthetic", model_id="synthetic", recipe="background", seed=i)
            for i in range(4)
        ]
        for dimension in QUESTION_DIMENSIONS:
            answer = format_answer(answer_letters(labels, dimension))
            if not answer:
                continue
            rationale = rationale_text(labels, dimension)
            sample = BenchmarkSample(
                id=sample_id(source_id, dimension),
                source_id=source_id,
                dimension=dimension,
                images=[f"{i}.png" for i in range(5)],
                question=question_text(dimension),
                answer=answer,
                defects=[list(label.defects) for label in labels],
                acceptable=[label.acceptable for label in labels],
                rationale=rationale,
                num_annotators=3,
                agreement=1.0,
                generation=provenance,
                dataset_version="v1",
                prompt=prompt_messages(question_text(dimension)),
                completion=completion_messages(rationale, answer),
            )
            samples.append((sample, images))
    return samples


def write_eval_export(folder: Path, splits: dict[str, dict[str, list[CandidateLabel]]]) -> Path:
    """An export folder in the export stage's layout and features (data/<split>-*.parquet)."""
    import datasets

    from medgen.export import dataset_features, sample_row

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, sources in splits.items():
        rows = [sample_row(sample, images) for sample, images in sources_samples(sources)]
        datasets.Dataset.from_list(rows, features=dataset_features()).to_parquet(
            folder / "data" / f"{split}-00000-of-00001.parquet"
        )
    return folder
