"""`medgen train --dry-run`: memory per GPU of a recipe, before any weight loads; plans that cannot fit are refused."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from medgen.cli import app
from training.preflight import GIB, architecture, fit_table, plan_for, shipped_recipes


def test_architectures_kept_in_the_repo_have_the_published_parameter_counts():
    from training.config import RECIPES_DIR

    # Qwen2.5-VL-3B/7B-Instruct on the Hub: 3,754,622,976 and 8,292,166,656 parameters.
    three = architecture("Qwen/Qwen2.5-VL-3B-Instruct", RECIPES_DIR / "qwen2.5-vl-3b")
    seven = architecture("Qwen/Qwen2.5-VL-7B-Instruct", RECIPES_DIR / "qwen2.5-vl-7b")
    assert three.parameters == 3_754_622_976 and seven.parameters == 8_292_166_656
    assert (three.hidden, three.layers, seven.hidden, seven.layers) == (2048, 36, 3584, 28)


def test_full_7b_does_not_fit_one_gpu_and_the_lora_recipe_does():
    full = plan_for("qwen2.5-vl-7b", "sft", gpu_gb=80)
    lora = plan_for("qwen2.5-vl-7b/lora", "sft", gpu_gb=80)
    assert not full.fits and lora.fits
    # fp32 weights + gradients + AdamW: 16 bytes per trainable parameter, over 120 GB before activations.
    assert full.parts["weights"] + full.parts["gradients"] + full.parts["optimizer (AdamW)"] > 120e9
    assert lora.parts["optimizer (AdamW)"] < 2 * GIB
    grpo = plan_for("qwen2.5-vl-7b", "grpo", gpu_gb=80)
    assert "reference model" in grpo.parts and not grpo.fits


def test_zero_shards_what_it_should():
    one = plan_for("qwen2.5-vl-7b", "sft", gpu_gb=80)
    zero2 = plan_for("qwen2.5-vl-7b", "sft", gpu_gb=80, gpus=8, zero=2)
    zero3 = plan_for("qwen2.5-vl-7b", "sft", gpu_gb=80, gpus=8, zero=3)
    assert zero2.parts["weights"] == one.parts["weights"]
    assert zero2.parts["optimizer (AdamW)"] == one.parts["optimizer (AdamW)"] // 8
    assert zero3.parts["weights"] == one.parts["weights"] // 8 and zero3.fits


def test_more_pixels_more_memory():
    small = plan_for("qwen2.5-vl-3b", "sft", gpu_gb=80)
    large = plan_for("qwen2.5-vl-3b", "sft", gpu_gb=80, overrides={"image_max_pixels": 4 * 200704})
    assert large.parts["activations"] > 3 * small.parts["activations"]
    assert large.parts["weights"] == small.parts["weights"]


def test_dry_run_refuses_in_one_line_naming_a_recipe_that_fits():
    result = CliRunner().invoke(
        app, ["train", "sft", "--recipe", "qwen2.5-vl-7b", "--dry-run", "--gpu-memory", "80"]
    )
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: sft recipe qwen2.5-vl-7b needs about")
    assert "--recipe qwen2.5-vl-7b/lora" in last
    ok = CliRunner().invoke(
        app, ["train", "grpo", "--recipe", "qwen2.5-vl-7b/lora", "--dry-run", "--gpu-memory", "80"]
    )
    assert ok.exit_code == 0, ok.output
    assert "fits: about" in ok.output and "KV cache (generation)" in ok.output


def test_dry_run_reads_a_local_model_folder(tiny_model):
    result = CliRunner().invoke(
        app,
        ["train", "sft", "--recipe", "tiny", "--model", str(tiny_model), "--dry-run", "--gpu-memory", "4"],
    )
    assert result.exit_code == 0, result.output
    assert str(tiny_model / "config.json") in result.output.replace("\n", "")


def test_dry_run_without_a_gpu_asks_for_its_size(monkeypatch):
    monkeypatch.setattr("training.preflight.detected_gpu", lambda: (None, 1))
    result = CliRunner().invoke(app, ["train", "sft", "--recipe", "qwen2.5-vl-3b", "--dry-run"])
    assert result.exit_code == 1
    assert "pass --gpu-memory" in result.output


def test_the_fit_table_covers_every_shipped_recipe():
    table = fit_table()
    for stage in ("sft", "grpo"):
        for name in shipped_recipes(stage):
            assert f"| {stage} | {name} |" in table
    assert "qwen2.5-vl-3b/vllm" in shipped_recipes("grpo") and "tiny" not in " ".join(shipped_recipes("sft"))


@pytest.mark.parametrize("zero", [-1, 4])
def test_bad_zero_stage_is_one_line(zero):
    result = CliRunner().invoke(
        app,
        ["train", "sft", "--recipe", "qwen2.5-vl-3b", "--dry-run", "--gpu-memory", "80", "--zero", str(zero)],
    )
    assert result.exit_code == 1 and "--zero must be 0, 1, 2 or 3" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpu-memory=-5"], "--gpu-memory must be a GPU's memory in GB, above 0"),
        (["--gpu-memory", "0"], "--gpu-memory must be a GPU's memory in GB, above 0"),
        (["--gpu-memory", "nan"], "--gpu-memory must be a GPU's memory in GB, above 0"),
        (["--gpu-memory", "inf"], "--gpu-memory must be a GPU's memory in GB, above 0"),
        (["--gpu-memory", "100000"], "at most 1024"),
        (["--gpu-memory", "80", "--gpus", "0"], "--gpus must be between 1 and"),
        (["--gpu-memory", "80", "--gpus=-3"], "--gpus must be between 1 and"),
    ],
)
def test_impossible_gpu_numbers_are_one_line_errors(flags, message):
    """Not taken at face value ("more than 1 x -5 GB"), and no traceback."""
    result = CliRunner().invoke(app, ["train", "grpo", "--recipe", "qwen2.5-vl-3b", "--dry-run", *flags])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_set_reads_numbers_written_as_people_write_them():
    """YAML 1.1 reads 2e-5 as a string; --set learning_rate=2e-5 (the README's example) is the number."""
    from training.config import parse_overrides

    assert parse_overrides(["learning_rate=2e-5", "warmup_ratio=.1", "lr_scheduler_type=cosine"]) == {
        "learning_rate": 2e-5,
        "warmup_ratio": 0.1,
        "lr_scheduler_type": "cosine",
    }
    result = CliRunner().invoke(
        app,
        [
            "train",
            "sft",
            "--recipe",
            "qwen2.5-vl-3b",
            "--dry-run",
            "--gpu-memory",
            "80",
            "--set",
            "learning_rate=2e-5",
        ],
    )
    assert result.exit_code == 0, result.output
