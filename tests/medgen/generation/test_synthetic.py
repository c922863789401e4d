"""The synthetic backend: each injected defect is measurably in the image, clean candidates keep the product."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from medgen.generation.backends.base import GenerationRequest, candidate_seed
from medgen.generation.backends.synthetic import (
    NORMAL_HEIGHT,
    Product,
    SyntheticBackend,
    cut_out,
    defective_slots,
    plan_defects,
    render_candidate,
)
from medgen.generation.config import DEFECT_KINDS, SyntheticOptions
from medgen.sources.ingest import add_sources
from medgen.sources.samples import draw_sample, write_samples
from schemas import CandidateLabel, SourceImage
from schemas.taxonomy import NUM_CANDIDATES, TAXONOMY

SIZE = 512
SEEDS = (11, 12, 13)


@pytest.fixture(scope="module")
def product() -> Product:
    image, mask = draw_sample(np.random.default_rng(4), cutout=True)
    return cut_out(image, mask)


def render(product: Product, seed: int, **defects: float) -> tuple[np.ndarray, dict]:
    rendered = render_candidate(product, seed, defects, SIZE)
    assert rendered.defects == sorted(defects)
    return np.asarray(rendered.image).astype(np.float32), rendered.extra


def expected_product(product: Product, placement: dict) -> tuple[np.ndarray, np.ndarray]:
    """The source's product resized to the placed size, and where it is fully opaque."""
    size = (placement["width"], placement["height"])
    rgb = cv2.resize(product.rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    opaque = cv2.resize(product.mask, size, interpolation=cv2.INTER_LINEAR) == 255
    return rgb, opaque


def product_region(image: np.ndarray, placement: dict) -> np.ndarray:
    x, y, w, h = placement["x"], placement["y"], placement["width"], placement["height"]
    return image[y : y + h, x : x + w]


def shadow_map(product: Product, seed: int, **defects: float) -> tuple[np.ndarray, dict]:
    """Darkening the product's shadow adds: the render minus the same render without the shadow."""
    with_shadow, extra = render(product, seed, **defects)
    without, _ = render(product, seed, **{**defects, "shadow_missing": 1.0})
    return (without - with_shadow).mean(axis=2), extra


@pytest.mark.parametrize("seed", SEEDS)
def test_clean_candidate_keeps_the_product_pixels(product: Product, seed: int) -> None:
    image, extra = render(product, seed)
    placement = extra["placement"]
    rgb, opaque = expected_product(product, placement)
    assert np.array_equal(product_region(image, placement)[opaque], rgb[opaque])
    assert placement["x"] >= 0 and placement["x"] + placement["width"] <= SIZE
    assert placement["y"] >= 0 and placement["y"] + placement["height"] <= SIZE
    assert NORMAL_HEIGHT[0] * SIZE - 1 <= placement["height"] <= NORMAL_HEIGHT[1] * SIZE + 1
    assert extra["defects"] == {}


def test_clean_candidate_rests_on_its_shadow(product: Product) -> None:
    shadow, extra = shadow_map(product, 11)
    placement = extra["placement"]
    x, w, base = placement["x"], placement["width"], placement["base_y"]
    assert placement["y"] + placement["height"] == base
    under = shadow[base - 2 : base + SIZE // 60, x : x + w]
    assert under.max() > 25  # a dark contact shadow right at the product's foot


@pytest.mark.parametrize("seed", SEEDS)
def test_warp_changes_the_product_shape(product: Product, seed: int) -> None:
    image, extra = render(product, seed, product_warped=0.8)
    pad = extra["defects"]["product_warped"]["pad_px"]
    patch = extra["placement"]
    unwarped = {**patch, "x": patch["x"] + pad, "width": patch["width"] - 2 * pad}
    rgb, opaque = expected_product(product, unwarped)
    difference = np.abs(product_region(image, unwarped)[opaque] - rgb[opaque]).max(axis=1)
    assert (difference > 30).mean() > 0.12  # the print and outline moved: many pixels changed a lot
    assert abs(extra["defects"]["product_warped"]["bow_px"]) > 0.08 * unwarped["width"]


def test_text_garbled_blurs_the_print(product: Product) -> None:
    clean, extra = render(product, 11)
    garbled, _ = render(product, 11, text_garbled=0.8)

    _, opaque = expected_product(product, extra["placement"])
    inside = cv2.erode(opaque.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)

    def sharpness(image: np.ndarray) -> float:
        region = product_region(image, extra["placement"]).mean(axis=2)
        return float(cv2.Laplacian(region, cv2.CV_32F)[inside].var())

    assert sharpness(garbled) < 0.4 * sharpness(clean)
    assert product.has_detail


def test_colour_shift_changes_packaging_colours(product: Product) -> None:
    image, extra = render(product, 12, color_shifted=0.7)
    rgb, opaque = expected_product(product, extra["placement"])
    region = product_region(image, extra["placement"])[opaque]
    assert np.abs(region - rgb[opaque]).mean() > 20
    # A colour change, not just brightness: channel ratios move.
    assert (
        np.abs(region.mean(axis=0) / region.mean() - rgb[opaque].mean(axis=0) / rgb[opaque].mean()).max()
        > 0.05
    )


def test_shadow_missing_leaves_the_foot_unshaded(product: Product) -> None:
    clean, extra = render(product, 13)
    missing, _ = render(product, 13, shadow_missing=0.8)
    placement = extra["placement"]
    x, w, base = placement["x"], placement["width"], placement["base_y"]
    foot = np.s_[base - 2 : base + SIZE // 60, x : x + w]
    assert missing[foot].mean() - clean[foot].mean() > 8


@pytest.mark.parametrize("seed", SEEDS)
def test_wrong_direction_shadow_falls_towards_the_light(product: Product, seed: int) -> None:
    right, extra = shadow_map(product, seed)
    wrong, _ = shadow_map(product, seed, shadow_direction_wrong=0.8)
    light = (
        1 if extra["scene"]["light"] == "left" else -1
    )  # shadows should fall to the right when lit from the left
    placement = extra["placement"]
    centre = placement["x"] + placement["width"] / 2
    xs = np.arange(SIZE)[None, :]

    def side(shadow: np.ndarray) -> float:
        weights = np.clip(shadow, 0, None)
        return float((weights * (xs - centre)).sum() / weights.sum())

    assert side(right) * light > 5
    assert side(wrong) * light < -5


def test_inconsistent_lighting_darkens_the_lit_side(product: Product) -> None:
    image, extra = render(product, 11, lighting_inconsistent=0.8)
    rgb, opaque = expected_product(product, extra["placement"])
    region = product_region(image, extra["placement"])
    ratio = np.where(opaque[..., None], region / np.maximum(rgb, 1), np.nan).mean(axis=2)
    half = ratio.shape[1] // 2
    near, far = (ratio[:, :half], ratio[:, half:])
    if extra["scene"]["light"] == "right":
        near, far = far, near
    assert np.nanmean(near) < np.nanmean(far) - 0.2  # brighter away from the scene's light
    assert np.nanmean(ratio) < 0.85


def test_floating_product_hovers_above_its_shadow(product: Product) -> None:
    shadow, extra = shadow_map(product, 12, floating=0.8)
    placement = extra["placement"]
    bottom, base, gap = (
        placement["y"] + placement["height"],
        placement["base_y"],
        extra["defects"]["floating"]["gap_px"],
    )
    assert base - bottom == gap >= 0.05 * SIZE
    columns = shadow[:, placement["x"] : placement["x"] + placement["width"]]
    darkest_row = int(np.argmax(columns.max(axis=1)))
    assert darkest_row >= bottom + 0.7 * gap  # the contact shadow lies on the surface, below a visible gap


@pytest.mark.parametrize("seed", range(6))
def test_wrong_scale_leaves_the_plausible_range(product: Product, seed: int) -> None:
    _, extra = render(product, seed, scale_wrong=0.8)
    placement = extra["placement"]
    height, width = placement["height"] / SIZE, placement["width"] / SIZE
    if extra["defects"]["scale_wrong"]["direction"] == "large":
        assert height >= 0.6 or width >= 0.8
    else:
        assert height <= 0.26


@pytest.mark.parametrize("seed", SEEDS)
def test_cropped_product_is_cut_by_the_frame(product: Product, seed: int) -> None:
    _, extra = render(product, seed, product_cropped=0.6)
    placement = extra["placement"]
    outside = max(0, -placement["x"]) + max(0, placement["x"] + placement["width"] - SIZE)
    assert outside >= 0.2 * placement["width"]


@pytest.mark.parametrize("seed", SEEDS)
def test_seam_is_a_colour_step_along_a_line(product: Product, seed: int) -> None:
    image, extra = render(product, seed, visible_seam=0.8)
    column = extra["defects"]["visible_seam"]["column"]
    steps = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))  # steps[c - 1]: between columns c - 1 and c
    assert steps[column - 1] > 6
    assert steps[column - 1] > 4 * np.median(steps)


@pytest.mark.parametrize("seed", SEEDS)
def test_repeated_texture_mirrors_a_strip(product: Product, seed: int) -> None:
    image, extra = render(product, seed, repeated_texture=0.8)
    clean, _ = render(product, seed)
    start, stop = extra["defects"]["repeated_texture"]["band"]
    period = 2 * extra["defects"]["repeated_texture"]["period_px"]
    length = stop - start - period
    band = image[:, start:stop]
    assert np.array_equal(band[:, :length], band[:, period : period + length])
    # mirrored across the band's edge, and not a flat colour
    half = period // 2
    edge = start if start > 0 else stop
    assert np.array_equal(image[:, edge - half : edge], image[:, edge : edge + half][:, ::-1])
    assert band.std(axis=1).mean() > 3
    assert (
        np.abs(clean[:, start : start + length] - clean[:, start + period : start + period + length]).mean()
        > 1
    )


def test_same_seed_same_image_and_defects_only_change_what_they_should(product: Product) -> None:
    a = render_candidate(product, 99, {"color_shifted": 0.7}, SIZE)
    b = render_candidate(product, 99, {"color_shifted": 0.7}, SIZE)
    assert a.image.tobytes() == b.image.tobytes() and a.extra == b.extra
    clean = np.asarray(render_candidate(product, 99, {}, SIZE).image)
    shifted = np.asarray(a.image)
    placement = a.extra["placement"]
    changed = np.any(clean != shifted, axis=2)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= placement["x"] and xs.max() < placement["x"] + placement["width"]
    assert ys.min() >= placement["y"] and ys.max() < placement["y"] + placement["height"]
    assert render_candidate(product, 100, {}, SIZE).image.tobytes() != a.image.tobytes()


def test_roles_give_each_source_clean_and_defective_candidates() -> None:
    options = SyntheticOptions()
    for i in range(200):
        defective = defective_slots(f"source-{i}", options)
        assert 1 <= len(defective) <= NUM_CANDIDATES - 1
        assert defective == defective_slots(f"source-{i}", options)
    counts = {len(defective_slots(f"source-{i}", options)) for i in range(200)}
    # Another run seed redraws which candidates are defective.
    assert any(
        defective_slots(f"source-{i}", options, 1) != defective_slots(f"source-{i}", options)
        for i in range(20)
    )
    assert counts == {1, 2, 3}


def _request(source_id: str, slot: int, product_image, mask, base_seed: int = 0) -> GenerationRequest:
    source = SourceImage(
        id=source_id,
        original_name="x.png",
        image_key="k",
        mask_key="m",
        width=product_image.width,
        height=product_image.height,
        phash="0" * 16,
        mask_from_alpha=True,
        added_at="2026-01-01T00:00:00Z",
    )
    return GenerationRequest(
        source, product_image, mask, slot, candidate_seed(base_seed, source_id, slot), base_seed
    )


@pytest.fixture(scope="module")
def photo():
    image, mask = draw_sample(np.random.default_rng(7), cutout=False)
    return image, mask


def test_plans_respect_options_and_conflicts(photo) -> None:
    image, mask = photo
    options = SyntheticOptions(
        defects=("shadow_missing", "shadow_direction_wrong", "floating"), max_defects_per_candidate=3
    )
    seen = set()
    for i in range(60):
        for slot in range(NUM_CANDIDATES):
            plan = plan_defects(_request(f"s{i}", slot, image, mask), options)
            seen.update(plan)
            assert set(plan) <= set(options.defects)
            assert not {"shadow_missing", "shadow_direction_wrong"} <= set(plan)
            assert not {"shadow_missing", "floating"} <= set(plan)
            assert all(0.6 <= s <= 1.0 for s in plan.values())
    assert seen == set(options.defects)


def test_backend_output_is_ground_truth_with_provenance(photo) -> None:
    image, mask = photo
    backend = SyntheticBackend(SyntheticOptions())
    requests = [_request(f"src{i}", slot, image, mask) for i in range(6) for slot in range(NUM_CANDIDATES)]
    results = backend.generate(requests)
    assert [r.request for r in results] == requests
    per_source: dict[str, list[list[str]]] = {}
    for result in results:
        tags = result.injected_defects
        assert tags is not None and set(tags) <= set(TAXONOMY.all_tags())
        CandidateLabel(defects=tuple(tags), acceptable=not tags)  # consistent as a label
        assert result.image.size == (SIZE, SIZE) and result.image.mode == "RGB"
        p = result.provenance
        assert (p.backend, p.model_id, p.recipe, p.seed) == (
            "synthetic",
            "synthetic",
            "composite",
            result.request.seed,
        )
        assert (p.width, p.height) == (SIZE, SIZE) and p.prompt
        extra = json.loads(p.extra)
        assert set(extra["defects"]) == set(tags)
        per_source.setdefault(result.request.source.id, []).append(tags)
    for tags in per_source.values():
        assert any(not t for t in tags) and any(t for t in tags)
    again = backend.generate(requests)
    assert [a.image.tobytes() for a in again] == [r.image.tobytes() for r in results]
    assert [a.injected_defects for a in again] == [r.injected_defects for r in results]


def test_every_defect_kind_is_injected_over_many_candidates(photo) -> None:
    image, mask = photo
    backend = SyntheticBackend(SyntheticOptions(resolution=128))
    tags = set()
    for result in backend.generate(
        [_request(f"s{i}", slot, image, mask) for i in range(40) for slot in range(4)]
    ):
        assert result.image.size == (128, 128)
        tags.update(result.injected_defects or [])
        if "product_cropped" not in result.injected_defects:  # nothing is cut by the frame unless labelled
            p = json.loads(result.provenance.extra)["placement"]
            assert p["x"] >= 0 and p["y"] >= 0 and p["x"] + p["width"] <= 128 and p["y"] + p["height"] <= 128
    assert tags == set(DEFECT_KINDS)


def test_options_errors_say_how_to_fix() -> None:
    with pytest.raises(ValidationError, match="cannot inject logo_altered; choose among"):
        SyntheticOptions(defects=("logo_altered",))
    with pytest.raises(ValidationError, match="0 <= min <= max <= 4"):
        SyntheticOptions(defective_per_source=(3, 1))
    with pytest.raises(ValidationError, match="enable at least one defect"):
        SyntheticOptions(defects=())
    assert SyntheticOptions(defects=(), defective_per_source=(0, 0)).defects == ()
    with pytest.raises(ValidationError, match="strength"):
        SyntheticOptions(strength=(0.0, 0.5))


def test_empty_mask_is_a_clear_error(photo) -> None:
    from PIL import Image

    from medgen.errors import MedgenError

    image, _ = photo
    with pytest.raises(MedgenError, match="empty product mask"):
        cut_out(image, Image.new("L", image.size, 0), "abcdef123456")


def test_run_generation_end_to_end(workspace, tmp_path) -> None:
    from medgen.generation.generate import run_generation

    write_samples(tmp_path / "samples", 3, seed=2)
    assert add_sources(workspace, [tmp_path / "samples"]).summary()["added"] == 3
    backend = SyntheticBackend(SyntheticOptions(resolution=256))
    report = run_generation(workspace, backend, base_seed=5)
    assert report.images_generated == 12 and not report.failures
    candidates = workspace.catalog.candidates()
    assert len(candidates) == 12
    by_source: dict[str, list] = {}
    for candidate in candidates:
        assert candidate.provenance.backend == "synthetic"
        assert candidate.injected_defects is not None
        image = workspace.store.open(candidate.image_key)
        assert image.size == (256, 256)
        by_source.setdefault(candidate.source_id, []).append(candidate.injected_defects)
    for tags in by_source.values():
        assert any(not t for t in tags) and any(t for t in tags)
    again = run_generation(workspace, backend, base_seed=5)
    assert again.images_generated == 0
    assert len(workspace.catalog.candidates()) == 12


def test_resolution_option_sizes_synthetic_candidates(tmp_path) -> None:
    """`--resolution` reaches the synthetic backend (it used to set only the diffusion model's size)."""
    from medgen.errors import MedgenError
    from medgen.generation.config import load_config

    assert load_config(backend="synthetic", resolution=256).synthetic.resolution == 256
    assert load_config(backend="synthetic").synthetic.resolution == 512
    recipe = tmp_path / "gen.yaml"
    recipe.write_text("backend: synthetic\nsynthetic:\n  resolution: 384\n  max_defects_per_candidate: 1\n")
    assert load_config(recipe).synthetic.resolution == 384  # the file's own size stands without --resolution
    both = load_config(recipe, resolution=640).synthetic
    assert both.resolution == 640 and both.max_defects_per_candidate == 1
    assert load_config(backend="diffusers", resolution=256).synthetic.resolution == 512
    with pytest.raises(MedgenError, match="synthetic.resolution"):
        load_config(backend="synthetic", resolution=64)
