"""benchmarks/gpu_recipes.py at tiny scale on CPU: the code paths a GPU run takes, and the full-size configs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_recipes.py"


@pytest.fixture(scope="module")
def gpu_recipes():
    spec = importlib.util.spec_from_file_location("gpu_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_recipes"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_shipped_recipe_and_sdxl_run_at_tiny_scale(gpu_recipes, tmp_path, capsys):
    results = gpu_recipes.main(["--scale", "tiny", "--steps", "2", "--json", str(tmp_path / "r.json")])
    by_key = {(r.part, r.recipe): r for r in results}
    for recipe in ("qwen2.5-vl-3b", "qwen2.5-vl-7b", "qwen2.5-vl-7b/lora"):
        for stage in ("sft", "grpo"):
            result = by_key[(stage, recipe)]
            assert result.status == "ran", result
            assert result.step_s > 0 and result.peak_gib > 0
    assert "LoRA r=64" in by_key[("sft", "qwen2.5-vl-7b/lora")].shapes
    assert "8 generations x 16 tokens" in by_key[("grpo", "qwen2.5-vl-3b")].shapes
    vllm = by_key[("grpo", "qwen2.5-vl-3b/vllm")]
    assert vllm.status.startswith("skipped")
    sdxl = by_key[("generate", "sdxl-inpainting")]
    assert sdxl.status == "ran" and float(sdxl.rate.split()[0]) > 0
    table = capsys.readouterr().out
    assert table.count("| ran |") == 7 and "| Part | Recipe |" in table
    assert len(json.loads((tmp_path / "r.json").read_text())) == len(results)


def test_the_kept_sdxl_inpainting_configs_are_full_size(gpu_recipes):
    components = gpu_recipes.sdxl_components("full", device="meta")
    counts = {
        name: sum(p.numel() for p in components[name].parameters())
        for name in ("unet", "vae", "text_encoder", "text_encoder_2")
    }
    # SDXL inpainting 0.1: the base UNet's 2,567,463,684 plus 5 x 320 x 9 for its 9-channel input.
    assert counts == {
        "unet": 2_567_478_084,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    }
    assert components["unet"].config.in_channels == 9


def test_full_scale_needs_a_gpu(gpu_recipes, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        gpu_recipes.main(["--no-sdxl"])
