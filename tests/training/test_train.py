"""`medgen train sft|grpo` on CPU with the tiny Qwen2.5-VL and a small export with five images per row."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medgen.cli import app
from tests.training.conftest import write_export
from training.config import RECIPES_DIR, RESOLVED_CONFIG_NAME, load_config
from training.grpo_config import GRPOConfig
from training.sft_config import SFTConfig


def test_full_fine_tuning_keeps_fp32_master_weights() -> None:
    from medgen.errors import MedgenError

    cpu = {"bf16": False, "use_cpu": True}
    full = load_config(SFTConfig, "qwen2.5-vl-3b", "sft", cpu)
    assert full.dtype == "float32" and not full.use_peft  # bf16 autocast on GPU, fp32 weights for AdamW
    with pytest.raises(MedgenError, match="fp32 master weights"):
        load_config(SFTConfig, "qwen2.5-vl-3b", "sft", {**cpu, "dtype": "bfloat16"})
    assert load_config(SFTConfig, "qwen2.5-vl-7b/lora", "sft", cpu).dtype == "bfloat16"  # LoRA: fine
    # (Under DeepSpeed ZeRO, which keeps fp32 master weights itself, bf16 is allowed; DeepSpeed is not installed here.)


def run_cli(runner: CliRunner, *args: str):
    return runner.invoke(app, ["train", *args], catch_exceptions=False)


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def changed(before: dict, after: dict) -> list[str]:
    return [name for name, tensor in before.items() if not tensor.equal(after[name])]


@pytest.mark.parametrize(
    "path", sorted(RECIPES_DIR.glob("*/*/config*.yaml")), ids=lambda p: str(p.relative_to(RECIPES_DIR))
)
def test_every_shipped_recipe_loads(path: Path) -> None:
    stage = path.parent.name
    config_class = SFTConfig if stage == "sft" else GRPOConfig
    # bf16 needs a GPU; the rest of the recipe is checked as written
    config = load_config(config_class, path, stage, {"bf16": False, "use_cpu": True})
    assert config.output_dir.endswith(stage)
    assert config.model_name_or_path
    if stage == "grpo":
        assert config.reward_weights == [config.dpa_reward_weight, config.format_reward_weight]


def test_unknown_recipe_key_is_one_clear_line(runner: CliRunner, tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model_name_or_path: x\nlearning_rat: 1.0e-5\n")
    result = run_cli(runner, "sft", "--recipe", str(recipe), "--dataset", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown key 'learning_rat' (did you mean 'learning_rate'?)" in result.output
    assert "Traceback" not in result.output


def test_unknown_recipe_name_lists_known_ones(runner: CliRunner) -> None:
    result = run_cli(runner, "grpo", "--recipe", "llama-9000")
    assert result.exit_code == 1
    assert "no grpo recipe 'llama-9000'" in result.output and "qwen2.5-vl-7b/lora" in result.output


def test_dataset_missing_columns_fails_before_loading_the_model(
    runner: CliRunner, tmp_path: Path, tiny_model: Path
) -> None:
    export = write_export(tmp_path / "export", {"train": 1}, drop=("completion",))
    output = tmp_path / "run" / "sft"
    result = run_cli(
        runner,
        "sft",
        "--recipe",
        "tiny",
        "--dataset",
        str(export),
        "--model",
        str(tiny_model),
        "-o",
        str(output),
    )
    assert result.exit_code == 1
    assert "lacks column(s) completion" in result.output
    assert not output.exists()


def test_model_that_is_not_a_vlm_is_refused(runner: CliRunner, tmp_path: Path, export_dir: Path) -> None:
    from transformers import Qwen2Config

    text_only = tmp_path / "text-model"
    Qwen2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ).save_pretrained(text_only)
    result = run_cli(
        runner, "sft", "--recipe", "tiny", "--dataset", str(export_dir), "--model", str(text_only)
    )
    assert result.exit_code == 1
    assert "is not a vision-language model" in result.output


def test_grpo_without_sft_output_says_what_to_run(
    runner: CliRunner, tmp_path: Path, export_dir: Path
) -> None:
    output = tmp_path / "run" / "grpo"
    result = run_cli(runner, "grpo", "--recipe", "tiny", "--dataset", str(export_dir), "-o", str(output))
    assert result.exit_code == 1
    assert f"{output.parent / 'sft'} does not exist (run `medgen train sft` first" in result.output


def test_resume_without_checkpoint_is_refused(
    runner: CliRunner, tmp_path: Path, export_dir: Path, tiny_model: Path
) -> None:
    args = ["sft", "--recipe", "tiny", "--dataset", str(export_dir), "--model", str(tiny_model)]
    result = run_cli(runner, *args, "-o", str(tmp_path / "empty"), "--resume")
    assert result.exit_code == 1
    assert "nothing to resume" in result.output


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory: pytest.TempPathFactory, export_dir: Path, tiny_model: Path) -> Path:
    output = tmp_path_factory.mktemp("run") / "sft"
    args = [
        "sft",
        "--recipe",
        "tiny",
        "--dataset",
        str(export_dir),
        "--model",
        str(tiny_model),
        "-o",
        str(output),
    ]
    result = run_cli(CliRunner(), *args, "--max-steps", "2")
    assert result.exit_code == 0, result.output
    (output.parent / "cli-output.txt").write_text(result.output)
    return output


@pytest.mark.slow
def test_sft_trains_on_images_and_saves_model_and_config(sft_run: Path, tiny_model: Path) -> None:
    state = json.loads((sft_run / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert all(entry["loss"] > 0 for entry in state["log_history"] if "loss" in entry)
    # the trainer's log lines go to the run's folder, not between the progress bar's updates
    logged = [json.loads(line) for line in (sft_run / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged if "loss" in entry] == [1, 2] and "grad_norm" in logged[0]
    assert "grad_norm" not in (sft_run.parent / "cli-output.txt").read_text()
    assert changed(weights(tiny_model), weights(sft_run))  # parameters moved
    # the resolved config reproduces the run on its own
    resolved = yaml.safe_load((sft_run / RESOLVED_CONFIG_NAME).read_text())
    assert resolved["model_name_or_path"] == str(tiny_model) and resolved["max_steps"] == 2
    again = load_config(SFTConfig, sft_run / RESOLVED_CONFIG_NAME, "sft")
    assert again.dataset == resolved["dataset"] and again.learning_rate == resolved["learning_rate"]
    # the output is a complete model + processor that GRPO and evaluation load
    from transformers import AutoProcessor

    assert hasattr(AutoProcessor.from_pretrained(sft_run), "image_processor")


@pytest.mark.slow
def test_sft_resumes_from_its_last_checkpoint(sft_run: Path, export_dir: Path, runner: CliRunner) -> None:
    # a marker written into the checkpoint's state survives only if training resumes from that state
    state_path = sft_run / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state["log_history"].append({"step": 2, "resume_marker": 1})
    state_path.write_text(json.dumps(state))
    args = ["sft", "--recipe", "tiny", "--dataset", str(export_dir), "-o", str(sft_run), "--resume"]
    result = run_cli(runner, *args, "--model", str(sft_run.parent / "sft"), "--max-steps", "4")
    assert result.exit_code == 0, result.output
    resumed = json.loads((sft_run / "checkpoint-4" / "trainer_state.json").read_text())
    assert resumed["global_step"] == 4
    assert any(entry.get("resume_marker") for entry in resumed["log_history"])
    assert [entry["step"] for entry in resumed["log_history"] if "loss" in entry] == [1, 2, 3, 4]


@pytest.mark.slow
def test_grpo_starts_from_sft_and_calls_both_rewards_with_the_columns(
    sft_run: Path, export_dir: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from medgen.errors import MedgenError
    from training import rewards

    calls: dict[str, list[dict]] = {"dpa": [], "format": []}
    original_dpa, original_format = rewards.dpa_accuracy, rewards.format_reward

    def spy_dpa(completions, answer, trainer_state=None, **kwargs):
        step = trainer_state.global_step  # the state object is shared and moves on: record it now
        calls["dpa"].append({"answer": answer, "step": step, "n": len(completions), **kwargs})
        return original_dpa(completions, answer, trainer_state, **kwargs)

    @functools.wraps(original_format)  # TRL logs a reward under its function name
    def spy_format(completions, **kwargs):
        calls["format"].append({"n": len(completions), **kwargs})
        return original_format(completions, **kwargs)

    monkeypatch.setattr(rewards, "dpa_accuracy", spy_dpa)
    monkeypatch.setattr(rewards, "format_reward", spy_format)
    # A random-weight model never writes the format: script what it writes, so the rewards differ
    # within each group and GRPO has an advantage to follow.
    _script_generation(monkeypatch, sft_run, SCRIPT)
    output = sft_run.parent / "grpo"
    result = run_cli(runner, "grpo", "--recipe", "tiny", "--dataset", str(export_dir), "-o", str(output))
    assert result.exit_code == 0, result.output

    answers = set(
        datasets.load_dataset(
            "parquet", data_files=str(export_dir / "data" / "train-*.parquet"), split="train"
        )["answer"]
    )
    assert len(calls["dpa"]) == 2 and len(calls["format"]) == 2  # two steps, each reward once per step
    for call in calls["dpa"]:
        assert len(call["answer"]) == call["n"] == 4 and set(call["answer"]) <= answers
        assert call["dpa_lambda0"] == 0.5 and call["dpa_schedule"] == "cosine"  # from the recipe
    assert [call["step"] for call in calls["dpa"]] == [0, 1]  # progress drives lambda(t)
    assert {"answer", "dimension", "images", "trainer_state"} <= set(calls["format"][0])

    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "rewards/dpa_accuracy/mean" in entry]
    assert len(logged) == 2 and all("rewards/format_reward/mean" in entry for entry in logged)
    assert changed(weights(sft_run), weights(output))  # started from the SFT model and moved
    assert yaml.safe_load((output / RESOLVED_CONFIG_NAME).read_text())["model_name_or_path"] == str(sft_run)
    # The run's saved config reproduces it: it loads again (its derived reward_weights included).
    again = load_config(GRPOConfig, output / RESOLVED_CONFIG_NAME, "grpo")
    assert again.reward_weights == [again.dpa_reward_weight, again.format_reward_weight]
    assert again.dpa_lambda0 == 0.5 and again.model_name_or_path == str(sft_run)
    with pytest.raises(MedgenError, match="dpa_reward_weight"):
        load_config(GRPOConfig, output / RESOLVED_CONFIG_NAME, "grpo", {"reward_weights": [1.0, 9.0]})


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_qwen25_vl_3b_recipe_trains_on_gpu(runner: CliRunner, tmp_path: Path, export_dir: Path) -> None:
    """The real 3B recipe (bf16, gradient checkpointing, frozen vision tower): a few SFT then GRPO steps."""
    output = tmp_path / "run"
    common = ["--recipe", "qwen2.5-vl-3b", "--dataset", str(export_dir), "--max-steps", "2"]
    result = run_cli(runner, "sft", *common, "-o", str(output / "sft"), "--set", "save_steps=2")
    assert result.exit_code == 0, result.output
    result = run_cli(
        runner,
        "grpo",
        *common,
        "-o",
        str(output / "grpo"),
        "--set",
        "num_generations=4",
        "--set",
        "per_device_train_batch_size=4",
        "--set",
        "max_completion_length=64",
        "--set",
        "save_steps=2",
    )
    assert result.exit_code == 0, result.output
    assert (output / "grpo" / "model.safetensors").exists() or any(
        (output / "grpo").glob("model-*.safetensors")
    )


def test_generation_inputs_batch_rows_for_the_model(tiny_model: Path, export_dir: Path) -> None:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from medgen.inference.prompts import decode_completions, generation_inputs
    from training.data import load_split

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model)
    rows = [load_split(str(export_dir), "train")[i] for i in range(2)]
    inputs = generation_inputs(processor, rows)
    assert inputs["image_grid_thw"].shape[0] == 10  # five images per row
    assert inputs["attention_mask"][:, -1].all()  # left padding: every prompt ends at the last position
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    texts = decode_completions(processor, output, inputs["input_ids"].shape[1])
    assert len(texts) == 2 and all(isinstance(text, str) for text in texts)


@pytest.mark.slow
def test_lora_sft_output_loads_merged_for_grpo(
    runner: CliRunner, tmp_path: Path, export_dir: Path, tiny_model: Path
) -> None:
    output = tmp_path / "run" / "sft"
    args = [
        "sft",
        "--recipe",
        "tiny",
        "--dataset",
        str(export_dir),
        "--model",
        str(tiny_model),
        "-o",
        str(output),
    ]
    result = run_cli(runner, *args, "--max-steps", "1", "--set", "use_peft=true")
    assert result.exit_code == 0, result.output
    assert (output / "adapter_config.json").is_file()

    from training.model import load_model

    config = load_config(GRPOConfig, "tiny", "grpo", {"output_dir": str(tmp_path / "run" / "grpo")})
    assert config.model_name_or_path == str(output)  # GRPO starts from the SFT output by default
    merged = {name: tensor for name, tensor in load_model(config).state_dict().items()}
    assert not any("lora" in name for name in merged)
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model).state_dict()
    moved = changed(base, merged)
    assert moved and all("language_model" in name for name in moved)  # LoRA targets the language model only


def test_colocated_vllm_starts_from_the_model_with_the_run_image_bounds(
    tiny_model: Path, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from training.grpo import vllm_start_folder
    from training.model import load_model, load_processor

    config = load_config(
        GRPOConfig,
        "tiny",
        "grpo",
        {
            "model_name_or_path": str(tiny_model),
            "output_dir": str(tmp_path / "grpo"),
            "image_max_pixels": 12544,
        },
    )
    model, processor = load_model(config), load_processor(config)
    assert vllm_start_folder(model, processor, config) is None  # no vLLM: nothing to prepare
    colocated = SimpleNamespace(use_vllm=True, vllm_mode="colocate", output_dir=config.output_dir)
    folder = vllm_start_folder(model, processor, colocated)
    assert folder == tmp_path / "grpo" / "vllm-start" and model.name_or_path == str(folder)
    from transformers import AutoProcessor

    reloaded = AutoProcessor.from_pretrained(folder)  # as vLLM builds it
    assert reloaded.image_processor.size["longest_edge"] == 12544  # the run's bound, not the default
    assert (folder / "config.json").is_file() and not folder.with_name("vllm-start.partial").exists()
    for recipe in ("qwen2.5-vl-3b/vllm", "qwen2.5-vl-7b/vllm"):
        vllm = load_config(GRPOConfig, recipe, "grpo", {"bf16": False, "use_cpu": True})
        assert vllm.use_vllm and vllm.vllm_max_model_length == 4096  # not the model config's 128k


def test_evaluation_scores_at_the_training_resolution(
    sft_run: Path, tiny_model: Path, export_dir: Path
) -> None:
    from medgen.inference.checkpoint import RECIPE_IMAGE_MAX_PIXELS, CheckpointModel
    from training.evaluation.evaluate import EvalConfig

    def bound(model: Path, **flags: int) -> int:
        config = EvalConfig(
            dataset=str(export_dir), model=str(model), device="cpu", output_dir=Path("eval"), **flags
        )
        checkpoint = CheckpointModel(config)
        assert (
            checkpoint.processor.image_processor.size["longest_edge"]
            == checkpoint.details()["image_max_pixels"]
        )
        return checkpoint.details()["image_max_pixels"]

    assert bound(sft_run) == 50176  # the tiny recipe's bound, from the run's train_config.yaml
    assert bound(tiny_model) == RECIPE_IMAGE_MAX_PIXELS  # no training record: the recipes' 448x448
    assert bound(sft_run, image_max_pixels=12544) == 12544  # the flag wins


SCRIPT = [
    "<think>ok</think><answer>A</answer>",  # well formed
    "<think>ok</think><answer>A,B</answer>",  # well formed
    "<think>ok</think><answer>A",  # malformed: no closing tag
    "ok",  # no answer at all
]


def _script_generation(monkeypatch: pytest.MonkeyPatch, model: Path, texts: list[str]) -> None:
    """Make the model 'write' ``texts`` in turn, for every group of completions GRPO asks it for."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    tokenizer = AutoProcessor.from_pretrained(model).tokenizer
    scripted = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    assert [tokenizer.decode(ids) for ids in scripted] == texts  # the tiny vocabulary can write them
    eos = tokenizer.eos_token_id

    def generate(self, input_ids, **kwargs):
        rows = [scripted[i % len(scripted)] + [eos] for i in range(input_ids.shape[0])]
        width = max(len(row) for row in rows)
        tail = torch.tensor([row + [eos] * (width - len(row)) for row in rows], dtype=input_ids.dtype)
        return torch.cat([input_ids, tail.to(input_ids.device)], dim=1)

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "generate", generate)


def _scripted_grpo_run(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    model: Path,
    dataset: Path,
    output: Path,
    texts: list[str],
) -> dict:
    """A real GRPOTrainer run whose model writes ``texts`` for each group of four completions."""
    _script_generation(monkeypatch, model, texts)
    result = run_cli(
        runner,
        "grpo",
        "--recipe",
        "tiny",
        "--dataset",
        str(dataset),
        "--model",
        str(model),
        "-o",
        str(output),
    )
    assert result.exit_code == 0, result.output
    return json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())


def _every_answer_is_a(tmp_path: Path, sources: int = 3) -> Path:
    """An export whose every question's answer is A: A is defective in all four dimensions, B-D are clean."""
    import datasets

    from medgen.export.parquet import dataset_features, sample_row
    from schemas import CandidateLabel
    from tests.training.eval_data import png, source_samples

    bad = CandidateLabel(
        defects=("product_warped", "shadow_missing", "floating", "visible_seam"), acceptable=False
    )
    rows = [
        sample_row(sample, [png((9 * s, 40 * i, 90)) for i in range(5)])
        for s in range(sources)
        for sample in source_samples(f"s{s}", [bad, *[CandidateLabel(acceptable=True)] * 3])
        if sample.dimension != "overall"
    ]
    dataset = tmp_path / "export"
    (dataset / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=dataset_features()).to_parquet(
        dataset / "data" / "train-00000-of-00001.parquet"
    )
    return dataset


def test_grpo_rewards_follow_lambda_and_move_the_weights(
    sft_run: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Scripted completions per group (gold, partial, malformed, unparseable) through the real GRPOTrainer."""
    from training.rewards import lambda_schedule

    dataset = _every_answer_is_a(tmp_path)
    gold = SCRIPT[0]  # then partial (A,B), malformed, unparseable
    state = _scripted_grpo_run(runner, monkeypatch, sft_run, dataset, tmp_path / "grpo", SCRIPT)
    logged = [e for e in state["log_history"] if "rewards/dpa_accuracy/mean" in e]
    assert len(logged) == 2
    for step, entry in enumerate(logged):
        lam = lambda_schedule(step / 2, 0.5, "cosine")  # the tiny recipe: lambda0 0.5, cosine, 2 steps
        # gold 1, partial lambda * (recall 1 - false positives 1/3), malformed 0, unparseable 0
        assert entry["rewards/dpa_accuracy/mean"] == pytest.approx((1 + lam * 2 / 3) / 4)
        assert entry["rewards/format_reward/mean"] == pytest.approx(2 / 4)
    assert changed(weights(sft_run), weights(tmp_path / "grpo"))  # unequal rewards: the policy moved

    # Control: four identical completions give identical rewards, zero advantages; with beta 0, no update.
    _scripted_grpo_run(runner, monkeypatch, sft_run, dataset, tmp_path / "control", [gold] * 4)
    assert not changed(weights(sft_run), weights(tmp_path / "control"))


def test_hard_case_mining_drops_flat_groups_and_refills_the_batch(
    sft_run: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through the real GRPOTrainer: questions the model always answers right (no reward variance) are
    dropped and replaced by other prompts; what is left flat is masked out; difficulty is kept per prompt."""
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from medgen.export.parquet import dataset_features
    from schemas.prompts import question_text
    from training import hard_cases

    # The model answers the three 'easy' dimensions right every time, and the fourth one four ways.
    easy = ("appearance_deformation", "lighting_shadow", "placement_layout")
    hard = "extension_rationality"
    tokenizer = AutoProcessor.from_pretrained(sft_run).tokenizer
    eos = tokenizer.eos_token_id
    encode = {text: tokenizer(text, add_special_tokens=False)["input_ids"] for text in SCRIPT}

    def generate(self, input_ids, **kwargs):
        rows = []
        for i, ids in enumerate(input_ids):
            prompt = tokenizer.decode(ids)
            assert sum(question_text(d) in prompt for d in (*easy, hard)) == 1
            text = SCRIPT[0] if question_text(hard) not in prompt else SCRIPT[i % len(SCRIPT)]
            rows.append(encode[text] + [eos])
        width = max(len(row) for row in rows)
        tail = torch.tensor([row + [eos] * (width - len(row)) for row in rows], dtype=input_ids.dtype)
        return torch.cat([input_ids, tail.to(input_ids.device)], dim=1)

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "generate", generate)
    batches: list[dict] = []
    trainers: list = []
    original = hard_cases.HardCaseGRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        trainers.append(self)
        output = original(self, inputs)
        batches.append({key: value for key, value in output.items()})
        return output

    monkeypatch.setattr(hard_cases.HardCaseGRPOTrainer, "_generate_and_score_completions", spy)
    output = tmp_path / "grpo"
    settings = [
        "hard_cases=true",
        "hard_cases_max_refills=3",
        "hard_cases_oversample=4",
        "per_device_train_batch_size=8",
    ]
    dataset = _every_answer_is_a(tmp_path)
    result = run_cli(
        runner, "grpo", "--recipe", "tiny", "--dataset", str(dataset),
        "--model", str(sft_run), "-o", str(output), *[arg for s in settings for arg in ("--set", s)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    assert len(batches) == 2  # two steps, two groups of four each
    masked = 0
    for batch in batches:
        groups = batch["advantages"].view(-1, 4)
        assert groups.shape[0] == 2 and batch["completion_mask"].shape[0] == 8
        for g, advantages in enumerate(groups):
            flat = bool((advantages.abs() < 1e-6).all())
            # A group reaches the loss only with varying rewards; a flat one left over counts for nothing.
            assert not flat or not batch["completion_mask"][4 * g : 4 * g + 4].any()
            masked += flat
        assert batch["num_items_in_batch"] == batch["completion_mask"].sum()
    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [e for e in state["log_history"] if "hard_cases/refilled" in e]
    assert len(logged) == 2
    dropped = {d: sum(e[f"hard_cases/{d}/dropped"] for e in logged) for d in (*easy, hard)}
    kept = {d: sum(e[f"hard_cases/{d}/kept"] for e in logged) for d in (*easy, hard)}
    assert dropped[hard] == 0 and sum(dropped[d] for d in easy) >= 1  # only the flat questions are dropped
    assert all(kept[d] == 0 for d in easy) and kept[hard] == 4 - masked  # only varying ones are kept
    assert sum(e["hard_cases/refilled"] for e in logged) >= 1  # flat groups were replaced, not only masked
    assert sum(e["hard_cases/masked"] for e in logged) == masked
    # Difficulty per prompt (1 - mean DPA accuracy): 0 for the questions always answered right.
    difficulty = json.loads((output / hard_cases.DIFFICULTY_FILE).read_text())
    table = pq.read_table(next((dataset / "data").glob("*.parquet")), columns=["id", "dimension"])
    name = dataset_features()["dimension"].int2str  # exports store the dimension as a class label
    rows = [
        (i, name(d)) for i, d in zip(table["id"].to_pylist(), table["dimension"].to_pylist(), strict=True)
    ]
    assert {d for _, d in rows} == {*easy, hard}
    assert difficulty and all(difficulty[i] == 0.0 for i, d in rows if d in easy and i in difficulty)
    assert all(difficulty[i] > 0.5 for i, d in rows if d == hard and i in difficulty)
    assert changed(weights(sft_run), weights(output))  # the varying groups moved the policy

    # The next epochs draw from what this run recorded: hard prompts come back about 1 + 4 x d times as often.
    from collections import Counter

    trainer = trainers[0]
    sampler = trainer._get_train_sampler()
    assert sampler.difficulty is trainer.difficulty
    ids = [str(i) for i in trainer.train_dataset["id"]]
    dimension_of = dict(rows)
    drawn = Counter()
    for _ in range(200):
        drawn.update(dimension_of[ids[i]] for i in list(sampler)[:: sampler.mini_repeat_count])
    assert [i for i, d in rows if d in easy and i in difficulty]  # some easy prompts were measured (d = 0)
    per_easy = sum(drawn[d] for d in easy) / sum(d in easy for _, d in rows)
    assert drawn[hard] / sum(d == hard for _, d in rows) > 1.5 * per_easy
