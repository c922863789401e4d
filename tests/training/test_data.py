"""Loading a split for training: images preloaded once give the model exactly the processor's input."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("max_pixels", [3136, 50176])
def test_preloaded_images_give_the_processor_the_same_input(export_dir, tiny_model, max_pixels):
    import torch

    from medgen.inference.prompts import generation_inputs
    from training.data import load_split, preload_images
    from training.model import load_processor
    from training.sft_config import SFTConfig

    config = SFTConfig(
        output_dir="unused", model_name_or_path=str(tiny_model), image_max_pixels=max_pixels, use_cpu=True
    )
    processor = load_processor(config)
    split = load_split(str(export_dir), "train")
    preloaded = preload_images(split, processor.image_processor)
    assert len(preloaded) == len(split)
    small = preloaded[0]["images"][0]
    assert small.width * small.height <= max_pixels and small.width % 28 == 0 and small.height % 28 == 0
    rows = [split[i] for i in range(2)]
    before = generation_inputs(processor, rows)
    after = generation_inputs(processor, [preloaded[i] for i in range(2)])
    assert torch.equal(before["image_grid_thw"], after["image_grid_thw"])
    assert torch.equal(before["input_ids"], after["input_ids"])
    # Same size, so the processor does not resize again: at most one grey level of rounding (1/255 / std 0.27).
    assert torch.allclose(before["pixel_values"], after["pixel_values"], atol=0.02)


def test_candidate_orders_move_images_labels_and_answers_together() -> None:
    """Every reordered copy keeps each candidate's image with its labels: the red candidate stays the answer."""
    import datasets
    from PIL import Image

    from schemas import CandidateLabel, answer_letters, format_answer
    from schemas.prompts import completion_messages, prompt_messages, question_text, rationale_text
    from training.data import with_candidate_orders

    dims = ["appearance_deformation", "overall"]
    rows = []
    for i in range(6):
        red = i % 4
        labels = [
            CandidateLabel(defects=("color_shifted",), acceptable=False)
            if k == red
            else CandidateLabel(acceptable=True)
            for k in range(4)
        ]
        for d, dimension in enumerate(dims):
            answer = format_answer(answer_letters(labels, dimension))
            colours = [(0, 0, 255)] + [(255, 0, 0) if k == red else (0, 255, 0) for k in range(4)]
            rows.append(
                {
                    "images": [Image.new("RGB", (8, 8), c) for c in colours],
                    "dimension": d,
                    "defects": [list(label.defects) for label in labels],
                    "acceptable": [label.acceptable for label in labels],
                    "answer": answer,
                    "rationale": "an annotator's note on B",
                    "prompt": prompt_messages(question_text(dimension)),
                    "completion": completion_messages(rationale_text(labels, dimension), answer),
                }
            )
    features = datasets.Dataset.from_list(rows[:1]).features
    features["images"] = datasets.List(datasets.Image())
    features["dimension"] = datasets.ClassLabel(names=dims)
    dataset = datasets.Dataset.from_list(rows, features=features)
    assert with_candidate_orders(dataset, 1, 0) is dataset
    augmented = with_candidate_orders(dataset, 4, seed=3)
    assert len(augmented) == 4 * len(dataset)
    orders = set()
    for row in augmented:
        reds = [k for k, image in enumerate(row["images"][1:]) if image.getpixel((0, 0)) == (255, 0, 0)]
        assert row["images"][0].getpixel((0, 0)) == (0, 0, 255) and len(reds) == 1
        letter = "ABCD"[reds[0]]
        assert row["defects"][reds[0]] == ["color_shifted"] and row["acceptable"][reds[0]] is False
        expected = (
            letter if dims[row["dimension"]] != "overall" else ",".join(x for x in "ABCD" if x != letter)
        )
        assert row["answer"] == expected
        assert f"<answer>{expected}</answer>" in row["completion"][0]["content"][0]["text"]
        orders.add(reds[0])
    assert orders == {0, 1, 2, 3}


def test_shared_changes_move_all_five_images_together_and_keep_the_rows(export_dir) -> None:
    """``augment_images``: every read gives the row's five images one change in common (the same mirror and
    colour factors), differing between reads; everything else of the row stays as exported."""
    import random

    import numpy as np
    from PIL import Image

    from training.data import load_split, shared_change, with_shared_changes

    source = Image.new("RGB", (16, 8), (200, 40, 40))
    source.paste((20, 20, 220), (0, 0, 4, 8))  # a blue stripe on the left: shows a mirror
    changed = shared_change([source] * 5, random.Random(3))
    assert len({np.asarray(image).tobytes() for image in changed}) == 1  # one change for all five
    mirrored = [shared_change([source], random.Random(seed))[0] for seed in range(20)]
    assert any(np.asarray(m)[:, -1, 2].mean() > 150 for m in mirrored)  # the stripe on the right: mirrored
    assert any(np.asarray(m)[:, 0, 2].mean() > 150 for m in mirrored)  # and left alone
    data = load_split(str(export_dir), "train")
    augmented = with_shared_changes(data, seed=0)
    first, again = augmented[0], augmented[0]
    assert first["answer"] == data[0]["answer"] and first["completion"] == data[0]["completion"]
    assert [image.size for image in first["images"]] == [image.size for image in data[0]["images"]]
    assert any(
        np.asarray(a).tobytes() != np.asarray(b).tobytes()
        for a, b in zip(first["images"], again["images"], strict=True)
    )  # drawn anew at every read
