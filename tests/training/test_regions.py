"""The answer variant with boxes: data, the localisation reward, the evaluation's localisation metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from medgen.errors import MedgenError
from schemas import CandidateLabel
from schemas.prompts import BOX_INSTRUCTIONS
from schemas.regions import Region
from tests.training.eval_data import OK, write_eval_export
from training.evaluation.metrics import Question, asking_for_boxes, score_cell, score_text
from training.rewards import localisation_reward, localisation_score

WARP = Region(tag="product_warped", box=(0.1, 0.2, 0.5, 0.6))
SHADOW = Region(tag="shadow_missing", box=(0.4, 0.9, 0.4, 0.9))


def located(*regions: Region) -> CandidateLabel:
    return CandidateLabel(defects=tuple(sorted({r.tag for r in regions})), acceptable=False, regions=regions)


SOURCES = {
    "s1": [
        located(WARP),
        OK,
        located(SHADOW),
        OK,
    ],  # appearance A (box), lighting C (point), publishable B, D
    "s2": [OK, CandidateLabel(defects=("floating",), acceptable=False), OK, OK],  # a defect without a region
}


@pytest.fixture(scope="module")
def boxed_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_eval_export(tmp_path_factory.mktemp("boxes") / "v1", {"train": SOURCES, "test": SOURCES})


def test_the_export_carries_each_questions_regions(boxed_export: Path) -> None:
    from medgen.export import load_export

    rows = {(r["source_id"], r["answer"]): r for r in load_export(boxed_export, "train")}
    appearance = rows["s1", "A"]["regions"]
    assert appearance[0][0]["tag"] == "product_warped" and appearance[2] == []  # C's region is lighting's
    assert rows["s1", "C"]["regions"][2][0]["box"][0] == pytest.approx(0.4)
    assert sum(len(c) for c in rows["s1", "B,D"]["regions"]) == 2  # publishable: every region


def test_with_answer_boxes_asks_and_answers_with_boxes(boxed_export: Path) -> None:
    from training.data import load_split, with_answer_boxes

    data = with_answer_boxes(load_split(str(boxed_export), "train"))
    names = data.features["dimension"].names
    for row in data:
        text = row["completion"][0]["content"][0]["text"]
        asked = row["prompt"][0]["content"][-1]["text"].endswith(BOX_INSTRUCTIONS)
        if names[row["dimension"]] == "overall":
            assert not asked and "<boxes>" not in text
            continue
        assert asked
        if row["source_id"] == "s1" and row["answer"] == "A":
            assert text.endswith("</answer><boxes>A (100,200,500,600)</boxes>")
        if row["source_id"] == "s1" and row["answer"] == "C":
            assert text.endswith("<boxes>C (400,900)</boxes>")
        if row["source_id"] == "s2":
            assert text.endswith("</answer>")  # no region: nothing to name


def test_with_answer_boxes_refuses_an_export_without_regions(tmp_path: Path) -> None:
    from training.data import load_split, with_answer_boxes

    plain = write_eval_export(tmp_path / "v1", {"train": {"s2": SOURCES["s2"]}})
    with pytest.raises(MedgenError, match="no row of this split has one"):
        with_answer_boxes(load_split(str(plain), "train"))
    with pytest.raises(MedgenError, match="regions column"):
        with_answer_boxes(load_split(str(plain), "train").remove_columns(["regions"]))


def test_candidate_orders_move_the_regions_with_their_images(boxed_export: Path) -> None:
    from training.data import load_split, with_candidate_orders

    data = with_candidate_orders(load_split(str(boxed_export), "train"), 3, seed=1)
    for row in data:
        for tags, regions in zip(row["defects"], row["regions"], strict=True):
            assert {r["tag"] for r in regions} <= set(tags)


def test_the_localisation_reward_scores_the_named_boxes() -> None:
    regions = [[WARP.model_dump()], [], [], []]
    assert localisation_score("<answer>A</answer><boxes>A (100,200,500,600)</boxes>", "A", regions) == 1.0
    half = localisation_score("<answer>A</answer><boxes>A (100,200,300,600)</boxes>", "A", regions)
    assert half == pytest.approx(0.5)
    assert localisation_score("<answer>A</answer>", "A", regions) == 0.0
    assert localisation_score("<answer>B</answer>", "B", regions) is None  # no true region to find
    point = [[], [], [SHADOW.model_dump()], []]
    assert localisation_score("<boxes>C (420,880)</boxes>", "C", point) == 1.0
    assert localisation_score("<boxes>C (100,100)</boxes>", "C", point) == 0.0
    rewards = localisation_reward(
        ["<boxes>A (100,200,500,600)</boxes>", "nothing"], answer=["A", "A"], regions=[regions, regions]
    )
    assert rewards == [1.0, 0.0]
    assert localisation_reward(["x"], answer=["A"]) == [0.0]  # an export without regions: off


def test_grpo_adds_the_localisation_reward_only_with_answer_boxes(tmp_path: Path, tiny_model: Path) -> None:
    from training.grpo import reward_functions
    from training.grpo_config import GRPOConfig

    def config(**kwargs: object) -> GRPOConfig:
        return GRPOConfig(
            output_dir=str(tmp_path),
            model_name_or_path=str(tiny_model),
            use_cpu=True,
            bf16=False,
            report_to=[],
            **kwargs,
        )

    assert [f.__name__ for f in reward_functions(config())] == ["dpa_accuracy", "format_reward"]
    boxed = config(answer_boxes=True, localisation_reward_weight=0.25)
    assert [f.__name__ for f in reward_functions(boxed)][-1] == "localisation_reward"
    assert boxed.reward_weights == [1.0, 0.5, 0.25]


def test_evaluation_measures_hits_and_pointing_per_answered_candidate() -> None:
    regions = [[WARP.model_dump()], [], [SHADOW.model_dump()], []]
    question = Question("q", "s1", "appearance_deformation", "A,C", [], [], regions=regions)
    exact = score_text(
        "m", question, "<think>x</think><answer>A,C</answer><boxes>A (100,200,500,600); C (410,900)</boxes>"
    )
    assert exact.located == [(True, True), (True, True)]
    near = score_text("m", question, "<think>x</think><answer>A,C</answer><boxes>A (250,350,450,550)</boxes>")
    assert near.located == [(False, True), (False, False)]  # A: centre inside, IoU low; C: not named
    none = score_text("m", question, "<think>x</think><answer>A,C</answer>")
    cell = score_cell([exact, near, none], resamples=0)
    assert (
        cell.located_n == 6
        and cell.box_hit_rate == pytest.approx(2 / 6)
        and cell.pointing == pytest.approx(3 / 6)
    )
    overall = Question("o", "s1", "overall", "B,D", [], [], regions=regions)
    assert score_text("m", overall, "<answer>B,D</answer>").located == []
    assert (
        BOX_INSTRUCTIONS
        in asking_for_boxes(
            Question(
                "q",
                "s",
                "lighting_shadow",
                "A",
                [{"role": "user", "content": [{"type": "text", "text": "Q"}]}],
                [],
            )
        ).prompt[0]["content"][-1]["text"]
    )


def test_eval_reports_localisation_on_an_export_with_regions(
    boxed_export: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from training.evaluation.config import EvalConfig
    from training.evaluation.evaluate import run_eval

    results = run_eval(
        EvalConfig(
            dataset=str(boxed_export),
            model=str(tiny_model),
            output_dir=tmp_path / "eval",
            max_new_tokens=8,
            bootstrap=0,
            answer_boxes=True,
        )
    )
    model = results.models[0]
    assert model.scores["dimensions"].located_n == 2 and model.scores["dimensions"].box_hit_rate == 0.0
    assert "Localisation" in (tmp_path / "eval" / "results.md").read_text()
    assert all(m.scores["dimensions"].located_n == 0 for m in results.models[1:])  # baselines name no boxes


def test_an_export_from_before_regions_still_loads_and_evaluates(tmp_path: Path) -> None:
    """Versions written before the regions column: no column at all. Evaluation reads them (no localisation);
    a sample without regions hashes as it did before regions existed, so upgrading changes no sample."""
    import hashlib
    import json

    from medgen.export.parquet import content_hash
    from training.data import load_split
    from training.evaluation.config import EvalConfig
    from training.evaluation.evaluate import run_eval
    from training.evaluation.metrics import questions_from_dataset

    old = write_eval_export(tmp_path / "old", {"train": {"s2": SOURCES["s2"]}, "test": {"s2": SOURCES["s2"]}})
    import pyarrow.parquet as pq

    for path in (old / "data").glob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["regions"]), path)
    data = load_split(str(old), "test")
    assert "regions" not in data.column_names
    assert all(q.regions == [] for q in questions_from_dataset(data))
    results = run_eval(EvalConfig(dataset=str(old), output_dir=tmp_path / "eval", bootstrap=0))
    assert all(m.scores["dimensions"].located_n == 0 for m in results.models)
    assert "Localisation" not in (tmp_path / "eval" / "results.md").read_text()

    from tests.training.eval_data import source_samples

    sample = source_samples("s2", SOURCES["s2"])[0]
    before = sample.model_dump(mode="json", exclude={"images", "dataset_version", "regions"})
    before["images"] = ["d"] * 5
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:32]
    assert content_hash(sample, ["d"] * 5) == expected


def test_the_tiny_model_takes_a_deeper_vision_tower(tmp_path: Path) -> None:
    import json

    from training.tiny import build_tiny_vlm

    folder = build_tiny_vlm(tmp_path / "m", layers=3, vision_depth=4)
    config = json.loads((folder / "config.json").read_text())
    assert config["vision_config"]["depth"] == 4 and config["vision_config"]["fullatt_block_indexes"] == [
        1,
        3,
    ]
    assert config["text_config"]["num_hidden_layers"] == 3
    with pytest.raises(ValueError, match="vision_depth"):
        build_tiny_vlm(tmp_path / "bad", vision_depth=1)
