"""Regions on the labeling page without a server: the config's controls, reading results, merging, ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.config import label_result, labeling_config, region_label
from annotation.regions import merge, merge_regions
from annotation.validation import CONTRADICTORY, INVALID, VALID, RawAnnotation, check
from medgen.generation.backends.synthetic import cut_out, render_candidate
from medgen.sources.samples import draw_sample
from schemas import CandidateLabel
from schemas.regions import Region

OK = CandidateLabel(acceptable=True)


def box(x0: float, y0: float, x1: float, y1: float, tag: str = "product_warped") -> Region:
    return Region(tag=tag, box=(x0, y0, x1, y1))


def warped(*regions: Region) -> CandidateLabel:
    tags = tuple(sorted({r.tag for r in regions} | {"product_warped"}))
    return CandidateLabel(defects=tags, acceptable=False, regions=regions)


def test_the_config_has_region_controls_only_with_regions() -> None:
    plain, with_regions = labeling_config(), labeling_config(regions=True)
    assert "RectangleLabels" not in plain and "KeyPointLabels" not in plain
    for letter in "ABCD":
        assert f'<RectangleLabels name="{letter}_box" toName="img_{letter}"' in with_regions
        assert f'<KeyPointLabels name="{letter}_point" toName="img_{letter}"' in with_regions
    assert 'alias="shadow_missing"' in with_regions.split('name="A_point"')[1].split("</KeyPointLabels>")[0]
    assert 'alias="composition_unbalanced"' not in with_regions.split('name="A_box"')[1].split("</View>")[0]
    assert labeling_config(votes=True, regions=True).count("<RectangleLabels") == 4


def test_regions_round_trip_through_label_studio_results() -> None:
    label = warped(box(0.1, 0.2, 0.5, 0.6), box(0.4, 0.9, 0.4, 0.9, "shadow_missing"))
    checked = check(RawAnnotation(id=1, task_id=1, result=label_result([OK, label, OK, OK])))
    assert checked.status == VALID and checked.labels is not None
    assert checked.labels[1].regions == label.regions
    # As the page writes it: the label's display value, a point's size, rounding past the edge.
    result = [
        *label_result([OK, warped(), OK, OK]),
        {
            "from_name": "B_box",
            "to_name": "img_B",
            "type": "rectanglelabels",
            "original_width": 512,
            "original_height": 512,
            "value": {
                "x": 60,
                "y": 10,
                "width": 40.3,
                "height": 20,
                "rotation": 0,
                "rectanglelabels": ["Product warped"],
            },
        },
    ]
    checked = check(RawAnnotation(id=2, task_id=1, result=result))
    assert checked.status == VALID and checked.labels[1].regions == (box(0.6, 0.1, 1.0, 0.3),)


@pytest.mark.parametrize(
    ("value", "status", "reason"),
    [
        (
            {"x": 80, "y": 10, "width": 40, "height": 20, "rectanglelabels": ["product_warped"]},
            INVALID,
            "outside",
        ),
        (
            {
                "x": 10,
                "y": 10,
                "width": 40,
                "height": 20,
                "rotation": 30,
                "rectanglelabels": ["product_warped"],
            },
            INVALID,
            "rotated",
        ),
        (
            {"x": 10, "y": 10, "width": 40, "height": 20, "rectanglelabels": ["Shadow missing"]},
            INVALID,
            "one defect tag",
        ),
        ({"x": 10, "y": 10, "rectanglelabels": ["product_warped"]}, INVALID, "position"),
        (
            {"x": 10, "y": 10, "width": 40, "height": 20, "rectanglelabels": ["scale_wrong"]},
            CONTRADICTORY,
            "not tagged",
        ),
    ],
)
def test_a_bad_region_is_refused_with_its_reason(value: dict, status: str, reason: str) -> None:
    item = {"from_name": "A_box", "to_name": "img_A", "type": "rectanglelabels", "value": value}
    checked = check(RawAnnotation(id=1, task_id=1, result=[*label_result([warped(), OK, OK, OK]), item]))
    assert checked.status == status and reason in " ".join(checked.reasons)


def test_a_defect_without_a_region_stays_valid() -> None:
    checked = check(RawAnnotation(id=1, task_id=1, result=label_result([warped(), OK, OK, OK])))
    assert checked.status == VALID and checked.labels[0].regions == ()


def test_merge_clusters_by_iou_takes_the_median_and_says_who_agreed() -> None:
    marks = [
        ("ann1", box(0.10, 0.10, 0.50, 0.50)),
        ("ann2", box(0.12, 0.10, 0.52, 0.50)),
        ("ann3", box(0.14, 0.12, 0.50, 0.52)),
        ("ann4", box(0.70, 0.70, 0.90, 0.90)),  # somewhere else, alone
    ]
    (merged,) = merge("product_warped", marks)
    assert merged.box == (0.12, 0.10, 0.50, 0.50) and (merged.agreed, merged.of) == (3, 4)
    assert merged.annotators == ("ann1", "ann2", "ann3")
    split = merge("product_warped", [("a", box(0.1, 0.1, 0.3, 0.3)), ("b", box(0.6, 0.6, 0.9, 0.9))])
    assert [(r.agreed, r.of) for r in split] == [(1, 2), (1, 2)]  # half each: both kept, each 1 of 2
    points = merge(
        "shadow_missing",
        [
            ("a", box(0.5, 0.9, 0.5, 0.9, "shadow_missing")),
            ("b", box(0.52, 0.88, 0.52, 0.88, "shadow_missing")),
        ],
    )
    assert len(points) == 1 and points[0].is_point and points[0].agreed == 2


def test_merge_regions_keeps_consensus_tags_only_and_an_adjudicators_own() -> None:
    votes = {
        "a": (warped(box(0.1, 0.1, 0.5, 0.5)), OK, OK, OK),
        "b": (
            CandidateLabel(
                defects=("product_warped", "scale_wrong"),
                acceptable=False,
                regions=(box(0.1, 0.1, 0.5, 0.5, "scale_wrong"),),
            ),
            OK,
            OK,
            OK,
        ),
    }
    consensus = (warped(), OK, OK, OK)
    merged = merge_regions(votes, consensus)
    assert [r.tag for r in merged[0].regions] == ["product_warped"] and merged[0].regions[0].of == 1
    own = (warped(box(0.2, 0.2, 0.3, 0.3)), OK, OK, OK)
    assert merge_regions(votes, own) == own
    assert merge_regions({"a": (warped(), OK, OK, OK)}, consensus) == consensus  # nobody drew: unchanged


@pytest.mark.parametrize("tag", ["color_shifted", "lighting_inconsistent", "text_garbled"])
def test_an_injected_defects_region_holds_what_it_changed(tag: str) -> None:
    """The same seed with and without the defect differs only by it: the changed pixels lie in its region."""
    image, mask = draw_sample(np.random.default_rng(5))
    product = cut_out(image, mask)
    for seed in range(40, 46):
        with_defect = render_candidate(product, seed, {tag: 0.9}, 256)
        if tag not in with_defect.defects:
            continue
        plain = render_candidate(product, seed, {}, 256)
        changed = (
            np.abs(np.asarray(with_defect.image, np.int16) - np.asarray(plain.image, np.int16)).max(axis=2)
            > 8
        )
        (region,) = with_defect.regions
        x0, y0, x1, y1 = (round(v * 256) for v in region.box)
        inside = changed[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1].sum()
        assert changed.sum() > 0 and inside / changed.sum() > 0.97, (seed, region.box)
        assert region.tag == tag and region_label(tag)
        return
    pytest.fail(f"no seed showed {tag}")


def test_a_seams_region_is_the_strip_around_its_column_and_a_missing_shadow_a_point_under_the_product() -> (
    None
):
    image, mask = draw_sample(np.random.default_rng(5))
    product = cut_out(image, mask)
    seams = [
        r
        for seed in range(40, 60)
        if "visible_seam" in (r := render_candidate(product, seed, {"visible_seam": 0.9}, 256)).defects
    ]
    assert seams
    for rendered in seams:
        (region,) = rendered.regions
        column = rendered.extra["defects"]["visible_seam"]["column"] / 256
        assert region.box[0] < column < region.box[2] and (region.box[1], region.box[3]) == (0.0, 1.0)
    rendered = render_candidate(product, 41, {"shadow_missing": 0.9}, 256)
    (point,) = rendered.regions
    placement = rendered.extra["placement"]
    assert point.is_point and point.box[1] == pytest.approx(placement["base_y"] / 256, abs=0.01)
    assert placement["x"] / 256 < point.box[0] < (placement["x"] + placement["width"]) / 256


def test_a_queue_that_requires_regions_refuses_a_markable_tag_without_one() -> None:
    unplaced = CandidateLabel(defects=("floating", "composition_unbalanced"), acceptable=False)
    result = label_result([OK, unplaced, OK, OK])
    assert check(RawAnnotation(id=1, task_id=1, result=result)).status == VALID  # optional by default
    checked = check(RawAnnotation(id=1, task_id=1, result=result), require_regions=True)
    assert checked.status == "incomplete"
    assert checked.reasons == [
        "B: floating has no region (this queue asks for one per tag)"
    ]  # not the frame tag
    placed = unplaced.model_copy(update={"regions": (box(0.1, 0.1, 0.4, 0.4, "floating"),)})
    assert (
        check(RawAnnotation(id=2, task_id=1, result=label_result([OK, placed, OK, OK])), True).status == VALID
    )


def test_a_json_min_export_keeps_its_regions() -> None:
    """JSON_MIN writes a region control as a list of its regions' values."""
    from annotation.validation import parse_export

    row = {
        "id": 7,
        "annotation_id": 70,
        "annotator": 3,
        "A_acceptable": "yes",
        "B_placement_layout": {"choices": ["floating"]},
        "B_box": [
            {
                "x": 10,
                "y": 20,
                "width": 30,
                "height": 40,
                "rotation": 0,
                "rectanglelabels": ["Floating"],
                "original_width": 512,
                "original_height": 512,
            }
        ],
        "C_acceptable": "yes",
        "D_acceptable": "yes",
    }
    (raw,) = parse_export([row])
    checked = check(raw)
    assert checked.status == VALID and checked.labels[1].regions == (box(0.1, 0.2, 0.4, 0.6, "floating"),)
