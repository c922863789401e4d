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
