"""The learnability benchmark's controls break what they claim to break, and nothing else."""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from tests.training.conftest import write_export

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from learnability import LABEL_COLUMNS, control_export  # noqa: E402


def _rows(export: Path, split: str) -> list[dict]:
    (path,) = (export / "data").glob(f"{split}-*.parquet")
    return pq.read_table(path).to_pylist()


def _pixels(image: dict) -> bytes:
    return Image.open(io.BytesIO(image["bytes"])).tobytes()


def test_shuffled_labels_move_answers_within_a_dimension(tmp_path: Path) -> None:
    export = write_export(tmp_path / "v1", {"train": 12, "test": 2})
    control = control_export(export, tmp_path / "shuffled", "shuffled_labels", seed=0)
    before, after = _rows(export, "train"), _rows(control, "train")
    assert [r["id"] for r in before] == [r["id"] for r in after]
    assert [r["images"] for r in before] == [r["images"] for r in after]  # the images stay
    assert [r["prompt"] for r in before] == [r["prompt"] for r in after]
    for dimension in {r["dimension"] for r in before}:  # the same answers, given to other questions
        ours = [r for r in before if r["dimension"] == dimension]
        theirs = [r for r in after if r["dimension"] == dimension]
        assert Counter(r["answer"] for r in ours) == Counter(r["answer"] for r in theirs)
    moved = sum(a["answer"] != b["answer"] for a, b in zip(before, after, strict=True))
    assert moved >= len(before) // 3
    for row in after:  # a question's answer, reasoning and labels still agree with each other
        assert row["completion"][0]["content"][0]["text"].endswith(f"<answer>{row['answer']}</answer>")
    assert all(set(r) >= set(LABEL_COLUMNS) for r in after)
    assert _rows(export, "test") == _rows(control, "test")  # scored on the true answers


def test_permuted_images_move_every_candidate_and_keep_the_original(tmp_path: Path) -> None:
    export = write_export(tmp_path / "v1", {"train": 12, "test": 2})
    control = control_export(export, tmp_path / "permuted", "permuted_images", seed=0)
    before, after = _rows(export, "train"), _rows(control, "train")
    orders = {}
    for old, new in zip(before, after, strict=True):
        assert [old[c] for c in LABEL_COLUMNS] == [new[c] for c in LABEL_COLUMNS]  # the answers stay
        old_px, new_px = [_pixels(i) for i in old["images"]], [_pixels(i) for i in new["images"]]
        assert new_px[0] == old_px[0]  # the original first, as the prompt says
        order = tuple(old_px[1:].index(p) for p in new_px[1:])
        assert sorted(order) == [0, 1, 2, 3] and all(k != i for i, k in enumerate(order))
        assert orders.setdefault(old["source_id"], order) == order  # one order per source
    assert len(set(orders.values())) > 1
    assert _rows(export, "test") == _rows(control, "test")
