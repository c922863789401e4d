"""Regions: validation, geometry, the answer variant's box text, and where they may sit on a label or sample."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas import CandidateLabel
from schemas.models import completion_answer
from schemas.prompts import (
    BOX_INSTRUCTIONS,
    answer_boxes,
    prompt_messages,
    question_text,
    with_box_instruction,
)
from schemas.regions import Region, format_boxes, hits, iou, parse_boxes, points_to, region_kinds


def box(x0: float, y0: float, x1: float, y1: float, tag: str = "product_warped") -> Region:
    return Region(tag=tag, box=(x0, y0, x1, y1))


def test_a_region_lies_inside_its_image_and_names_a_known_tag() -> None:
    with pytest.raises(ValidationError, match="inside its image"):
        box(0.5, 0.5, 1.2, 0.9)
    with pytest.raises(ValidationError, match="inside its image"):
        box(0.6, 0.5, 0.4, 0.9)  # x0 after x1
    with pytest.raises(ValidationError, match="not in the taxonomy"):
        box(0.1, 0.1, 0.2, 0.2, tag="ghost")
    with pytest.raises(ValidationError, match="cannot agree"):
        Region(tag="product_warped", box=(0.1, 0.1, 0.2, 0.2), agreed=3, of=2)
    point = box(0.4, 0.9, 0.4, 0.9, tag="shadow_missing")
    assert point.is_point and point.kind == "point" and not box(0.1, 0.1, 0.2, 0.2).is_point


def test_a_label_region_belongs_to_one_of_its_tags() -> None:
    with pytest.raises(ValidationError, match="scale_wrong is not one"):
        CandidateLabel(
            defects=("product_warped",), acceptable=False, regions=(box(0, 0, 1, 1, "scale_wrong"),)
        )
    label = CandidateLabel(defects=("product_warped",), acceptable=False, regions=(box(0.1, 0.2, 0.3, 0.4),))
    assert CandidateLabel.model_validate_json(label.model_dump_json()) == label
    assert CandidateLabel.model_validate({"defects": [], "acceptable": True}).regions == ()  # older rows


def test_geometry() -> None:
    assert iou((0, 0, 0.5, 0.5), (0, 0, 0.5, 0.5)) == pytest.approx(1.0)
    assert iou((0, 0, 0.5, 0.5), (0.25, 0, 0.75, 0.5)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0.2, 0.2), (0.5, 0.5, 0.9, 0.9)) == 0.0
    truth = box(0.2, 0.2, 0.6, 0.6)
    assert hits(box(0.22, 0.2, 0.6, 0.62), truth) and not hits(box(0.2, 0.2, 0.35, 0.35), truth)
    assert points_to(box(0.2, 0.2, 0.35, 0.35), truth)  # its centre lies in the true box
    shadow = box(0.5, 0.9, 0.5, 0.9, "shadow_missing")
    assert hits(box(0.55, 0.92, 0.55, 0.92, "shadow_missing"), shadow)
    assert not hits(box(0.5, 0.5, 0.5, 0.5, "shadow_missing"), shadow)
    assert region_kinds()["shadow_missing"] == "point" and region_kinds()["composition_unbalanced"] is None


def test_box_text_round_trips_and_rejects_what_is_not_a_box() -> None:
    text = format_boxes({"C": [box(0.4, 0.9, 0.4, 0.9, "shadow_missing")], "A": [box(0.12, 0.3, 0.55, 0.8)]})
    assert text == "<boxes>A (120,300,550,800); C (400,900)</boxes>"
    parsed = parse_boxes(f"<think>x</think><answer>A,C</answer>{text}")
    assert [r.box for r in parsed["A"]] == [(0.12, 0.3, 0.55, 0.8)] and parsed["C"][0].is_point
    assert parse_boxes("<answer>A</answer>") == {}
    assert parse_boxes("<boxes>A (1200,0,10,10); B (500,500,100,900); C (1,2,3)</boxes>") == {}
    assert format_boxes({}) == ""


def test_a_completion_with_boxes_is_well_formed_and_keeps_its_answer() -> None:
    assert completion_answer("<think>r</think><answer>A,C</answer><boxes>A (1,2,3,4)</boxes>") == "A,C"
    assert completion_answer("<think>r</think><answer>A,C</answer><boxes>A <b></boxes>") is None
    regions = [[box(0.1, 0.1, 0.5, 0.5).model_dump()], [], [box(0.2, 0.2, 0.3, 0.3)], []]
    assert answer_boxes("A", regions) == "<boxes>A (100,100,500,500)</boxes>"  # C is not in the answer
    assert answer_boxes("B", regions) == ""
    prompt = with_box_instruction(prompt_messages(question_text("lighting_shadow")))
    assert prompt[0]["content"][-1]["text"].endswith(BOX_INSTRUCTIONS)
    assert with_box_instruction(prompt) == prompt
