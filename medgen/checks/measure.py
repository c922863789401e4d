"""Measure one candidate against its original: where the product went, and what changed about it and around it.

The original is prepared once per source (``Reference``): at the working size (long side ``work_size``) its
product mask and ORB features; its product box resampled to ``PRODUCT_SIZE`` px (``Product``) with Lab
colours, colour groups, edge map, printed area and the pixels where optical flow can be trusted. Each
candidate is then

    located    ORB matches, RANSAC similarity (rotation, uniform scale, shift); a masked template search over
               scales where the product has too few features; the score is checked against how well the
               product's edges agree there (a backdrop where the product stood is "not found")
    placement  share of the product cut by the frame; scale in candidate px per original px
    resampled  the candidate's product onto the original's product crop, straight from full size
    compared   bend (DIS optical flow between the two edge maps, away from what changed, as a cubic field
               less its rigid part), colour (median Delta E a*b* of the coloured parts), print (local
               structural similarity once the flow undid any bend; the original softened to the candidate's
               detail when it is shown smaller), occlusion (the largest region the original's colour groups
               do not explain), and OCR when asked
    around     a colour step along the generation boundary: the original's frame inside an outpainted canvas,
               or a ring of the original's backdrop kept around an inpainted product; repetition of an
               outpainted area (normalised autocorrelation)

All values are plain floats in ``Measured.values`` (None where a check could not judge); ``findings`` turns
them into taxonomy tags with the thresholds of ``CheckConfig``.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from medgen.checks.config import CheckConfig

ORB_FEATURES = 1500  # per image at the working size (fewer left the located transform too loose for bends)
MIN_INLIERS = 8
MARGIN = 6  # px around the product box at the working size
PRODUCT_SIZE = 256  # px, long side of the product crop where appearance is compared
HALO_REACH = 26  # px around the located product (working size) searched for a kept ring of backdrop


@dataclass
class Product:
    """The original's product box resampled so its long side is ``PRODUCT_SIZE`` px: where appearance is compared."""

    origin: tuple[float, float]  # the box's top-left corner, original px
    k: float  # crop px per original px
    rgb: np.ndarray
    gray: np.ndarray
    edges: (
        np.ndarray
    )  # uint8, blurred colour-edge strength: where outlines and print are, whatever their colour
    lab: np.ndarray
    mask: np.ndarray  # bool, the product
    inner: np.ndarray  # bool, the product away from its outline (colour, occlusion)
    reliable: np.ndarray  # bool, inner and textured enough for optical flow to be trusted
    printed: np.ndarray  # bool, where the product has print (text, logo)
    groups: np.ndarray  # int, each pixel's group of the product's colours (occlusion)


@dataclass
class Reference:
    """The original photo prepared for comparison: at the working size (locating) and its product crop."""

    size: tuple[int, int]  # original (width, height), px
    factor: float  # working px per original px
    gray: np.ndarray
    lab: np.ndarray  # float32, blurred
    mask: np.ndarray  # bool, product, working size
    box: tuple[int, int, int, int]  # product box (x0, y0, x1, y1) with MARGIN, working px
    keypoints: Any
    descriptors: np.ndarray | None
    product: Product
    full: np.ndarray  # the original, full size RGB (OCR reads it)
    text: str | None = None  # OCR of the product, read once
    text_read: bool = False


@dataclass
class Measured:
    """What one candidate measured: every value (None: not judged), the transform, where the product is."""

    values: dict[str, float | None]
    transform: np.ndarray | None = None  # 2x3, working original -> working candidate
    located_by: str = "none"
    product_box: tuple[float, float, float, float] | None = None  # candidate, normalised (x0, y0, x1, y1)
    generated: str = "none"  # inplace (scene around the kept product) | outpaint (canvas around the original)


def working(image: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """``image`` (RGB uint8) with its long side at ``work_size`` (never enlarged), and the factor used."""
    h, w = image.shape[:2]
    factor = min(1.0, work_size / max(h, w))
    if factor == 1.0:
        return image, 1.0
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (L 0-100, a, b), float32, lightly blurred so alignment jitter does not read as colour."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return cv2.GaussianBlur(lab, (0, 0), 1.2)


_local = threading.local()  # OpenCV's detectors and flow keep state: one of each per thread


def _features(gray: np.ndarray, mask: np.ndarray | None) -> tuple[Any, np.ndarray | None]:
    if not hasattr(_local, "orb"):
        _local.orb = cv2.ORB_create(nfeatures=ORB_FEATURES, fastThreshold=10, edgeThreshold=15, patchSize=15)
    return _local.orb.detectAndCompute(gray, mask)


def _edges(rgb: np.ndarray) -> np.ndarray:
    """Edge strength of the lightness, blurred and scaled to its own 99th percentile (a hue change keeps it)."""
    lightness = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(lightness, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lightness, cv2.CV_32F, 0, 1, ksize=3)
    strength = cv2.GaussianBlur(cv2.magnitude(gx, gy), (0, 0), 2.5)
    top = float(np.percentile(strength, 99)) or 1.0
    return np.clip(strength * (255 / top), 0, 255).astype(np.uint8)


def _soften(rgb: np.ndarray, detail: float) -> np.ndarray:
    """``rgb`` with only ``detail`` (0-1) of its resolution left: down-sampled, then up again."""
    h, w = rgb.shape[:2]
    small = cv2.resize(
        rgb, (max(4, round(w * detail)), max(4, round(h * detail))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def prepare_reference(original: np.ndarray, mask: np.ndarray, config: CheckConfig) -> Reference:
    """Prepare the original (RGB uint8) and its product mask (bool or 0/255, same size) once for its candidates."""
    mask = np.asarray(mask).astype(bool)
    if mask.sum() < 16:
        mask = np.ones(mask.shape, bool)  # no product found: compare the whole photo
    rgb, factor = working(original, config.work_size)
    h, w = rgb.shape[:2]
    small_mask = cv2.resize(mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_AREA) >= 128
    if small_mask.sum() < 16:
        small_mask = np.ones((h, w), bool)
    ys, xs = np.nonzero(small_mask)
    box = (
        max(0, int(xs.min()) - MARGIN),
        max(0, int(ys.min()) - MARGIN),
        min(w, int(xs.max()) + 1 + MARGIN),
        min(h, int(ys.max()) + 1 + MARGIN),
    )
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    dilated = cv2.dilate(small_mask.astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
    keypoints, descriptors = _features(gray, dilated)
    return Reference(
        size=(original.shape[1], original.shape[0]),
        factor=factor,
        gray=gray,
        lab=_lab(rgb),
        mask=small_mask,
        box=box,
        keypoints=keypoints,
        descriptors=descriptors,
        product=_product(original, mask),
        full=original,
    )


def _product(original: np.ndarray, mask: np.ndarray) -> Product:
    ys, xs = np.nonzero(mask)
    pad = 0.03 * max(xs.max() - xs.min(), ys.max() - ys.min()) + 2
    x0, y0 = max(0.0, xs.min() - pad), max(0.0, ys.min() - pad)
    x1, y1 = min(float(mask.shape[1]), xs.max() + 1 + pad), min(float(mask.shape[0]), ys.max() + 1 + pad)
    k = PRODUCT_SIZE / max(x1 - x0, y1 - y0)
    size = (max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k)))
    to_original = np.float64([[1 / k, 0, x0], [0, 1 / k, y0]])
    flags = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    rgb = cv2.warpAffine(
        original, to_original, size, flags=flags | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    crop_mask = (
        cv2.warpAffine(
            mask.astype(np.uint8) * 255, to_original, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        )
        >= 128
    )
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    inner = _erode(crop_mask, 4)
    edges = _edges(rgb)
    corner = cv2.cornerMinEigenVal(edges, 7)
    top = float(np.percentile(corner[inner], 99)) if inner.any() else 0.0
    reliable = inner & (corner > max(1e-4, 0.05 * top))  # where flow is constrained in both directions
    texture = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F)), (0, 0), 2.0)
    printed = inner & (texture > max(6.0, float(np.percentile(texture[inner], 70)) if inner.any() else 6.0))
    lab = _lab(rgb)
    return Product(
        (x0, y0), k, rgb, gray, edges, lab, crop_mask, inner, reliable, printed, _colour_groups(lab, inner)
    )


# ---- locating ------------------------------------------------------------------------------------------


def locate(reference: Reference, gray: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    """Similarity transform (2x3) taking the original's working frame to the candidate's, how it was found, and
    how sure: RANSAC inliers / 20 (capped at 1) for features, the template's correlation otherwise."""
    if reference.descriptors is not None and len(reference.descriptors) >= MIN_INLIERS:
        keypoints, descriptors = _features(gray, None)
        if descriptors is not None and len(descriptors) >= MIN_INLIERS:
            matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
            pairs = matcher.knnMatch(reference.descriptors, descriptors, k=2)
            good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
            if len(good) >= MIN_INLIERS:
                src = np.float32([reference.keypoints[m.queryIdx].pt for m in good])
                dst = np.float32([keypoints[m.trainIdx].pt for m in good])
                matrix, inliers = cv2.estimateAffinePartial2D(
                    src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=2000, confidence=0.995
                )
                if (
                    matrix is not None
                    and int(inliers.sum()) >= MIN_INLIERS
                    and _plausible(matrix, reference, gray)
                ):
                    return matrix, "features", min(1.0, int(inliers.sum()) / 20)
    return _template_search(reference, gray)


def _plausible(matrix: np.ndarray, reference: Reference, gray: np.ndarray) -> bool:
    """A similarity that keeps the product a sensible size and puts some of it inside the candidate."""
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    if not 0.15 <= scale <= 6:
        return False
    x0, y0, x1, y1 = _box_in_candidate(matrix, reference.box, gray.shape)
    return x1 > x0 and y1 > y0


def _template_search(reference: Reference, gray: np.ndarray) -> tuple[np.ndarray | None, str, float]:
    """The product's masked template over scales, at a quarter of the working size then refined."""
    x0, y0, x1, y1 = reference.box
    template = reference.gray[y0:y1, x0:x1]
    tmask = reference.mask[y0:y1, x0:x1].astype(np.uint8) * 255
    pad = max(template.shape) // 2  # a product partly out of frame still matches
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    coarse = 0.25
    small = cv2.resize(padded, None, fx=coarse, fy=coarse, interpolation=cv2.INTER_AREA)
    best: tuple[float, float, int, int] | None = None
    for scale in np.geomspace(0.3, 2.5, 24):
        tw, th = round(template.shape[1] * scale * coarse), round(template.shape[0] * scale * coarse)
        if tw < 6 or th < 6 or tw >= small.shape[1] or th >= small.shape[0]:
            continue
        t = cv2.resize(template, (tw, th), interpolation=cv2.INTER_AREA)
        m = cv2.resize(tmask, (tw, th), interpolation=cv2.INTER_NEAREST)
        if m.max() == 0:
            continue
        result = cv2.matchTemplate(small, t, cv2.TM_CCOEFF_NORMED, mask=m)
        result[~np.isfinite(result)] = 0
        _, value, _, (bx, by) = cv2.minMaxLoc(result)
        if best is None or value > best[0]:
            best = (value, float(scale), bx, by)
    if best is None:
        return None, "none", 0.0
    _, scale, bx, by = best
    # Refine around the coarse hit at full working size, scales within one step.
    ox, oy = bx / coarse - pad, by / coarse - pad
    refined = (-1.0, scale, ox, oy)
    for s in scale * np.geomspace(0.93, 1.07, 5):
        tw, th = round(template.shape[1] * s), round(template.shape[0] * s)
        if tw >= padded.shape[1] or th >= padded.shape[0] or tw < 4 or th < 4:
            continue
        t = cv2.resize(template, (tw, th), interpolation=cv2.INTER_AREA)
        m = cv2.resize(tmask, (tw, th), interpolation=cv2.INTER_NEAREST)
        cx, cy = round(ox + pad), round(oy + pad)
        wx0, wy0 = max(0, cx - 8), max(0, cy - 8)
        window = padded[wy0 : min(padded.shape[0], cy + th + 8), wx0 : min(padded.shape[1], cx + tw + 8)]
        if window.shape[0] < th or window.shape[1] < tw:
            continue
        result = cv2.matchTemplate(window, t, cv2.TM_CCOEFF_NORMED, mask=m)
        result[~np.isfinite(result)] = 0
        _, value, _, (rx, ry) = cv2.minMaxLoc(result)
        if value > refined[0]:
            refined = (value, float(s), wx0 + rx - pad, wy0 + ry - pad)
    score, s, tx, ty = refined
    matrix = np.float64([[s, 0, tx - s * x0], [0, s, ty - s * y0]])
    return matrix, "template", max(0.0, float(score))


# ---- measuring -----------------------------------------------------------------------------------------


def measure(reference: Reference, candidate: np.ndarray, config: CheckConfig) -> Measured:
    """Every value of one candidate (RGB uint8, any size) against ``reference``."""
    rgb, factor = working(candidate, config.work_size)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    matrix, how, score = locate(reference, gray)
    values: dict[str, float | None] = dict.fromkeys(VALUE_NAMES)
    values["located"] = score
    if matrix is None or score < config.min_located:
        return Measured(values, located_by=how)
    values["scale"] = math.hypot(matrix[0, 0], matrix[1, 0]) * reference.factor / factor  # px per original px
    inverse = cv2.invertAffineTransform(matrix)
    h, w = reference.gray.shape
    frame = cv2.warpAffine(np.full(gray.shape, 255, np.uint8), inverse, (w, h), flags=cv2.INTER_NEAREST) > 0
    product = reference.mask
    values["cropped_share"] = 1.0 - float((product & frame).sum()) / max(1, int(product.sum()))
    measured = Measured(values, matrix, how, _box_in_candidate(matrix, reference.box, gray.shape))

    # The candidate's product resampled onto the original's product crop, straight from full size.
    crop = reference.product
    to_candidate = _crop_to_candidate(reference, matrix, factor)
    size = (crop.rgb.shape[1], crop.rgb.shape[0])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    cand = cv2.warpAffine(candidate, to_candidate, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    seen = cv2.warpAffine(np.full(candidate.shape[:2], 255, np.uint8), to_candidate, size, flags=flags) >= 255
    valid = crop.inner & seen
    if valid.sum() < 0.05 * crop.inner.sum() + 16:
        values["presence"] = values["located"] = 0.0  # almost all of it out of the frame: nothing to see
        return measured
    _compare(crop, cand, seen, values, score, config)
    measured.generated, around = _extension(reference, rgb, matrix)
    values.update(around)
    if config.ocr:
        values["ocr_similarity"] = ocr_similarity(reference, candidate, to_candidate, values["scale"], config)
    return measured


def _compare(
    crop: Product,
    cand: np.ndarray,
    seen: np.ndarray,
    values: dict[str, float | None],
    score: float,
    config: CheckConfig,
) -> None:
    """The appearance values of the candidate's product (``cand``, resampled onto the original's crop; ``seen``:
    what of it the candidate's frame shows): bend, colour, print, occlusion, presence (into ``values``)."""
    valid = crop.inner & seen
    # A product shown smaller than in the original has less detail: compare it with an original softened alike.
    detail = min(1.0, values["scale"] / crop.k) / min(1.0, 1.0 / crop.k)
    ref_gray, ref_edges = crop.gray, crop.edges
    if detail < 0.95:
        softened = _soften(crop.rgb, detail)
        ref_gray, ref_edges = cv2.cvtColor(softened, cv2.COLOR_RGB2GRAY), _edges(softened)
    # Non-rigid displacement: optical flow between the two products' edge maps (a colour change or blurred print
    # moves no edge of the outline), minus the similarity part the located transform missed.
    # The scene around the product is new: shown as in the original, so the flow follows the product only.
    around = ~cv2.dilate(crop.mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) | ~seen
    cand_edges = np.where(around, ref_edges, _edges(cand))
    flow = _dis().calc(ref_edges, cand_edges, None)
    gx, gy = np.meshgrid(
        np.arange(cand.shape[1], dtype=np.float32), np.arange(cand.shape[0], dtype=np.float32)
    )
    compensated = cv2.remap(
        cand, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Colour and occlusion on the candidate as it is: the flow would paint an occluder over with the product.
    cand_lab = _lab(cand)
    values.update(_colour(crop.lab, cand_lab, valid))
    values["occluded_share"], covered, unlike = _occlusion(crop.groups, cand_lab, valid, crop.mask)
    # Is it the product at all? Its edges (outline, print) against the original's, once the flow has undone
    # any bend: a backdrop where the product stood has few of them.
    comp_edges = _edges(compensated)
    near = cv2.dilate(crop.mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & seen
    values["presence"] = _correlation(ref_edges[near], comp_edges[near])
    values["located"] = min(score, values["presence"])
    # Print: local structure once the flow has undone any bend; under an occluder it is the occlusion's finding.
    structure = _structure(ref_gray, cv2.cvtColor(compensated, cv2.COLOR_RGB2GRAY))
    printed = crop.printed & seen & ~unlike
    if printed.sum() >= 30:
        values["print_similarity"] = float(structure[printed].mean())
    # The bend only where the flow explains the candidate: an occluder or garbled print makes flow up.
    explained = cv2.absdiff(comp_edges, ref_edges) < 40
    changed = covered | (crop.printed & (structure < 0.6))
    if (values["print_similarity"] or 1.0) < config.print_similarity:
        changed |= crop.printed  # print rewritten: the bend is read from the outline and the other edges
    near_change = cv2.dilate(changed.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    well_inside = _erode(seen, 12)  # flow is not trusted next to the frame's edge
    reliable = crop.reliable & well_inside & explained & ~near_change
    outside = cv2.dilate(changed.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    if (
        outside.sum() > 0.01 * outside.size
    ):  # again, what changed shown as in the original: the flow stays local
        flow = _dis().calc(ref_edges, np.where(outside, ref_edges, cand_edges), None)
    bend = _bend(flow, reliable)
    if bend is not None:
        values["warp_percent"] = float(np.percentile(bend, 90)) / PRODUCT_SIZE * 100
    if values["occluded_share"]:
        # Occlusion again once the located transform is refined by the flow's rigid part (which, unlike the
        # flow itself, cannot paint an occluder over): a misplaced outline is not an object in front.
        rigid = _rigid_field(flow, crop.reliable & well_inside & explained)
        if rigid is not None:
            refined = cv2.remap(
                cand,
                gx + rigid[..., 0],
                gy + rigid[..., 1],
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            values["occluded_share"], _, _ = _occlusion(crop.groups, _lab(refined), valid, crop.mask)


VALUE_NAMES = (
    "located",
    "presence",
    "scale",
    "cropped_share",
    "warp_percent",
    "color_delta_e",
    "lightness_delta",
    "print_similarity",
    "ocr_similarity",
    "occluded_share",
    "seam_delta_e",
    "halo_share",
    "repeat_score",
)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64) - a.mean(), b.astype(np.float64) - b.mean()
    spread = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / spread) if spread > 0 else 0.0


def _crop_to_candidate(reference: Reference, matrix: np.ndarray, factor: float) -> np.ndarray:
    """2x3 map from the original's product crop to the candidate's full-size pixels."""
    crop = reference.product
    crop_to_original = np.float64(
        [[1 / crop.k, 0, crop.origin[0]], [0, 1 / crop.k, crop.origin[1]], [0, 0, 1]]
    )
    original_to_working = np.diag([reference.factor, reference.factor, 1.0])
    working_to_candidate = np.diag([1 / factor, 1 / factor, 1.0])
    full = np.vstack([matrix, [0, 0, 1]])
    return (working_to_candidate @ full @ original_to_working @ crop_to_original)[:2]


def _dis() -> Any:
    if not hasattr(_local, "dis"):
        _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _local.dis


def _least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares by the normal equations: a few coefficients over thousands of rows, far quicker than an
    SVD (the coordinates are centred and scaled to [-0.5, 0.5], so the system is well conditioned)."""
    gram = design.T @ design + 1e-9 * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ target)


def _bend(flow: np.ndarray, where: np.ndarray) -> np.ndarray | None:
    """The smooth non-rigid part of the flow: a cubic field fitted at the ``where`` pixels (trimmed twice, so
    a patch of made-up flow around changed print or an occluder does not pull it), less its similarity part
    (shift, rotation, uniform scale: what the located transform missed). Its length at those pixels."""
    ys, xs = np.nonzero(where)
    h, w = where.shape
    if len(xs) < 200 or np.ptp(xs) < 0.4 * w or np.ptp(ys) < 0.4 * h:
        return None  # too few, or too bunched, to tell a bend from noise
    if len(xs) > 3000:  # evenly thinned: the fit needs shape, not every pixel
        step = len(xs) // 3000 + 1
        ys, xs = ys[::step], xs[::step]
    scale = float(max(h, w))
    x, y = xs / scale - 0.5, ys / scale - 0.5
    design = np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3])
    target = flow[ys, xs].astype(np.float64)
    keep = np.ones(len(xs), bool)
    for _ in range(3):
        coefficients = _least_squares(design[keep], target[keep])
        error = np.linalg.norm(design @ coefficients - target, axis=1)
        keep = error <= max(np.percentile(error, 80), 0.5)
    field = design @ coefficients
    # Take out the similarity that best explains the smooth field.
    rigid = np.zeros((2 * len(x), 4))
    rigid[0::2] = np.column_stack([x, -y, np.ones_like(x), np.zeros_like(x)])
    rigid[1::2] = np.column_stack([y, x, np.zeros_like(x), np.ones_like(x)])
    a, b, tx, ty = _least_squares(rigid, field.reshape(-1))
    similar = np.column_stack([a * x - b * y + tx, b * x + a * y + ty])
    return np.linalg.norm(field - similar, axis=1)


def _rigid_field(flow: np.ndarray, where: np.ndarray) -> np.ndarray | None:
    """The similarity (shift, rotation, uniform scale) that best explains the flow at ``where`` (trimmed twice),
    over the whole crop (h x w x 2): the located transform's remaining error."""
    ys, xs = np.nonzero(where)
    if len(xs) < 50:
        return None
    step = len(xs) // 3000 + 1
    ys, xs = ys[::step], xs[::step]
    h, w = where.shape
    scale = float(max(h, w))
    x, y = xs / scale - 0.5, ys / scale - 0.5
    design = np.zeros((2 * len(x), 4))
    design[0::2] = np.column_stack([x, -y, np.ones_like(x), np.zeros_like(x)])
    design[1::2] = np.column_stack([y, x, np.zeros_like(x), np.ones_like(x)])
    target = flow[ys, xs].astype(np.float64).reshape(-1)
    keep = np.ones(len(target), bool)
    for _ in range(3):
        coefficients = _least_squares(design[keep], target[keep])
        error = np.abs(design @ coefficients - target)
        keep = error <= max(np.percentile(error, 80), 0.5)
    a, b, tx, ty = coefficients
    px, py = np.meshgrid(np.arange(w) / scale - 0.5, np.arange(h) / scale - 0.5)
    return np.stack([a * px - b * py + tx, b * px + a * py + ty], axis=-1).astype(np.float32)


def _colour(ref_lab: np.ndarray, cand_lab: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Colour change of the product: the median a*b* difference over its coloured parts (chroma above 15), or
    over all of it where that is larger (a cast moves the whites too); and the median lightness change."""
    ref, cand = ref_lab[valid][::2], cand_lab[valid][::2]  # every other pixel: plenty for medians
    delta_ab = np.hypot(*(cand[:, 1:] - ref[:, 1:]).T)
    coloured = np.hypot(ref[:, 1], ref[:, 2]) > 15
    shift = float(np.median(delta_ab))
    if coloured.sum() >= max(20, 0.02 * len(ref)):
        shift = max(shift, float(np.median(delta_ab[coloured])))
    return {"color_delta_e": shift, "lightness_delta": float(np.median(cand[:, 0] - ref[:, 0]))}


def _colour_groups(lab: np.ndarray, inner: np.ndarray, groups: int = 6) -> np.ndarray:
    """The original product's colours in ``groups`` groups (k-means over its inner pixels): a label per pixel."""
    pixels = lab[inner] if inner.sum() >= groups else lab.reshape(-1, 3)
    sample = np.ascontiguousarray(pixels[:: max(1, len(pixels) // 3000)], dtype=np.float32)
    groups = min(groups, len(sample))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, _, centres = cv2.kmeans(sample, groups, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    distances = ((lab.reshape(-1, 1, 3) - centres[None]) ** 2).sum(-1)
    return np.argmin(distances, axis=1).reshape(lab.shape[:2]).astype(np.int32)


def _occlusion(
    labels: np.ndarray, cand_lab: np.ndarray, valid: np.ndarray, product: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Share of the product covered by the largest connected region unlike what the original's colours became,
    that region, and every region unlike it (both bool, a little grown).

    Each group of the original's colours (``labels``) takes its median colour in the candidate. A cast or a
    hue turn moves every group consistently and leaves nothing unlike; an object in front of the product
    leaves a region whose colour its group does not explain.
    """
    groups = int(labels.max()) + 1
    medians = np.zeros((groups, 3), np.float32)
    for g in range(groups):
        ys, xs = np.nonzero(valid & (labels == g))
        if len(ys):
            medians[g] = np.median(cand_lab[ys[::4], xs[::4]], axis=0)  # a quarter is plenty for a median
    unlike = ((np.linalg.norm(cand_lab - medians[labels], axis=-1) > 18) & valid).astype(np.uint8)
    # Opened with a disc wider than the sliver a bent or shifted outline leaves: an occluder is a blob.
    unlike = cv2.morphologyEx(unlike, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
    count, components, stats, _ = cv2.connectedComponentsWithStats(unlike, connectivity=8)
    if count <= 1:
        return 0.0, np.zeros(valid.shape, bool), np.zeros(valid.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    share = float(stats[largest, cv2.CC_STAT_AREA]) / max(1, int(product.sum()))
    grow = np.ones((7, 7), np.uint8)
    return (
        share,
        cv2.dilate((components == largest).astype(np.uint8), grow).astype(bool),
        cv2.dilate(unlike, grow).astype(bool),
    )


def _structure(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Local correlation (SSIM's structure term, Gaussian window) of two grey crops, per pixel, in [-1, 1]."""
    a, b = a.astype(np.float32), b.astype(np.float32)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 1.5)

    ma, mb = blur(a), blur(b)
    va = np.maximum(blur(a * a) - ma * ma, 0)
    vb = np.maximum(blur(b * b) - mb * mb, 0)
    cov = blur(a * b) - ma * mb
    c = 4.0  # keeps flat areas from dividing by zero
    return np.clip((cov + c) / (np.sqrt(va * vb) + c), -1, 1)


def _box_in_candidate(
    matrix: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, ...]
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    corners = np.float32([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    h, w = shape[:2]
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    return (
        float(np.clip(lo[0] / w, 0, 1)),
        float(np.clip(lo[1] / h, 0, 1)),
        float(np.clip(hi[0] / w, 0, 1)),
        float(np.clip(hi[1] / h, 0, 1)),
    )


# ---- around the product --------------------------------------------------------------------------------


def _extension(
    reference: Reference, rgb: np.ndarray, matrix: np.ndarray
) -> tuple[str, dict[str, float | None]]:
    """How the scene was generated (outpaint: around the original's frame; inplace: around the product), the
    colour step along that boundary, and the repetition of an outpainted area (a scene's own tiles are not)."""
    h, w = rgb.shape[:2]
    rh, rw = reference.gray.shape
    corners = np.float32([[0, 0], [rw, 0], [0, rh], [rw, rh]]) @ matrix[:, :2].T + matrix[:, 2]
    left, top = corners.min(axis=0)
    right, bottom = corners.max(axis=0)
    sides = []
    if left > 6:
        sides.append(("x", int(round(left)), int(max(0, top)), int(min(h, bottom)), 1))
    if right < w - 6:
        sides.append(("x", int(round(right)), int(max(0, top)), int(min(h, bottom)), -1))
    if top > 6:
        sides.append(("y", int(round(top)), int(max(0, left)), int(min(w, right)), 1))
    if bottom < h - 6:
        sides.append(("y", int(round(bottom)), int(max(0, left)), int(min(w, right)), -1))
    product = cv2.warpAffine(reference.mask.astype(np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST)
    # Only the band around the product matters for the halo (and the frame's backdrop test): its box.
    ys, xs = np.nonzero(cv2.dilate(product, np.ones((3, 3), np.uint8)))
    if len(xs) == 0:
        return "inplace", {"halo_share": None}
    x0, y0 = max(0, xs.min() - HALO_REACH), max(0, ys.min() - HALO_REACH)
    x1, y1 = min(w, xs.max() + 1 + HALO_REACH), min(h, ys.max() + 1 + HALO_REACH)
    shift = np.float64([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]])
    box_matrix = (shift @ np.vstack([matrix, [0, 0, 1]]))[:2]
    original = cv2.warpAffine(
        reference.lab, box_matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    near = _lab(rgb[y0:y1, x0:x1])
    product = product[y0:y1, x0:x1]
    frame = (left - x0, top - y0, right - x0, bottom - y0)
    if sides and _backdrop_kept(near, original, product, frame):
        # Outpainted: the original photo, backdrop and all, sits inside a larger canvas.
        kept = np.zeros((h, w), bool)
        kept[int(max(0, top)) : int(min(h, bottom)), int(max(0, left)) : int(min(w, right))] = True
        lab = _lab(rgb)
        seam = max(_side_step(lab, *side) for side in sides)
        repeat = _repetition(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), ~kept)
        return "outpaint", {"seam_delta_e": seam, "repeat_score": repeat}
    # In place: the kept product, the generated scene around it.
    return "inplace", {"halo_share": _halo(near, original, product)}


def _backdrop_kept(
    lab: np.ndarray, original: np.ndarray, product: np.ndarray, frame: tuple[float, ...]
) -> bool:
    """Whether the candidate still shows the original's backdrop around the product, inside its frame."""
    h, w = product.shape
    left, top, right, bottom = (int(round(v)) for v in frame)
    region = np.zeros((h, w), bool)
    region[max(0, top) : min(h, bottom), max(0, left) : min(w, right)] = True
    backdrop = region & ~cv2.dilate(product, np.ones((9, 9), np.uint8)).astype(bool)
    if backdrop.sum() < 50:
        return False
    return float(np.median(np.linalg.norm(lab[backdrop] - original[backdrop], axis=-1))) < 8


def _side_step(lab: np.ndarray, axis: str, at: int, start: int, stop: int, inward: int) -> float:
    """Colour step across one straight boundary: the median signed Lab difference of the bands either side,
    less the same across parallel lines 8 px away (a scene edge crossing the boundary is not a seam)."""
    if stop - start < 8:
        return 0.0
    plane = lab if axis == "x" else lab.transpose(1, 0, 2)
    limit = plane.shape[1]

    def step(offset: int) -> float:
        a, b = at + offset - 3, at + offset + 3
        if a < 0 or b + 1 > limit:
            return 0.0
        before = plane[start:stop, a : a + 2].mean(axis=1)
        after = plane[start:stop, b - 1 : b + 1].mean(axis=1)
        return float(np.linalg.norm(np.median(after - before, axis=0)))

    return max(0.0, step(0) - max(step(-8 * inward), step(8 * inward)))


def _halo(lab: np.ndarray, original_lab: np.ndarray, product: np.ndarray) -> float | None:
    """An inpainting seam around the kept product: the original's backdrop left in a ring around it.

    Per distance ring outside the product (1-24 px), the share of pixels that still match the original (Delta E
    under 6 once the camera's change, read on the product itself, is taken out). A kept ring reads near 1 up
    to some distance and drops there; the value is the largest drop (share within less the share of the next
    4 rings). A new scene everywhere, or the original backdrop kept everywhere, has no drop.
    """
    if product.sum() < 16:
        return None
    inside = _erode(product > 0, 3)
    offset = np.median((lab - original_lab)[inside], axis=0) if inside.sum() >= 16 else np.zeros(3)
    kept = np.linalg.norm(lab - offset - original_lab, axis=-1) < 6
    distance = cv2.distanceTransform((product == 0).astype(np.uint8), cv2.DIST_L2, 3)
    ring = np.minimum(distance.astype(np.int32), 25).ravel()
    counts = np.bincount(ring, minlength=26)[1:25]
    kept_counts = np.bincount(ring, weights=kept.ravel().astype(np.float64), minlength=26)[1:25]
    shares = np.where(counts >= 20, kept_counts / np.maximum(counts, 1), np.nan)
    drops = [
        np.nanmean(shares[:r]) - np.nanmean(shares[r : r + 4])
        for r in range(2, 20)
        if np.isfinite(shares[r : r + 4]).any() and np.isfinite(shares[:r]).any()
    ]
    return float(max(drops)) if drops else None


def _repetition(gray: np.ndarray, generated: np.ndarray) -> float | None:
    """Peak normalised autocorrelation, away from zero shift, of the largest generated rectangle's detail."""
    ys, xs = np.nonzero(generated)
    if len(xs) < 400:
        return None
    # The widest band of generated columns (or rows): where an outpainter fills or the scene extends.
    columns = generated.mean(axis=0) > 0.9
    rows = generated.mean(axis=1) > 0.9
    patch = None
    for axis, flags in (("x", columns), ("y", rows)):
        runs = _runs(flags)
        if runs:
            a, b = max(runs, key=lambda r: r[1] - r[0])
            if b - a >= 24:
                candidate = gray[:, a:b] if axis == "x" else gray[a:b, :]
                if patch is None or candidate.size > patch.size:
                    patch = candidate
    if patch is None:
        return None
    detail = patch.astype(np.float32) - cv2.GaussianBlur(patch.astype(np.float32), (0, 0), 4)
    detail -= detail.mean()
    energy = float((detail * detail).sum())
    if energy < 1e-3 * detail.size:
        return 0.0
    spectrum = np.fft.rfft2(detail, s=(2 * detail.shape[0], 2 * detail.shape[1]))
    correlation = np.fft.irfft2(spectrum * np.conj(spectrum))[: detail.shape[0], : detail.shape[1]] / energy
    # Overlap-normalise: a shift of (dy, dx) compares only the overlapping part.
    oy = (detail.shape[0] - np.arange(detail.shape[0]))[:, None] / detail.shape[0]
    ox = (detail.shape[1] - np.arange(detail.shape[1]))[None, :] / detail.shape[1]
    correlation = correlation / np.maximum(oy * ox, 0.25)
    correlation[:6, :6] = 0  # the zero-shift lobe
    correlation[: detail.shape[0] // 2 + 1, 0:1] = np.minimum(correlation[: detail.shape[0] // 2 + 1, 0:1], 0)
    return float(np.clip(correlation[: detail.shape[0] // 2, : detail.shape[1] // 2].max(), 0, 1))


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(), strict=True))


# ---- printed text --------------------------------------------------------------------------------------


def _normalise_text(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z\u4e00-\u9fff]", "", text).lower()


def read_text(image: np.ndarray, languages: str) -> str:
    """Tesseract's reading of an RGB crop (upscaled to ~600 px tall for small print)."""
    import pytesseract

    h = image.shape[0]
    if h < 600:
        image = cv2.resize(image, None, fx=600 / h, fy=600 / h, interpolation=cv2.INTER_CUBIC)
    return _normalise_text(pytesseract.image_to_string(image, lang=languages, config="--psm 11"))


def ocr_similarity(
    reference: Reference, candidate: np.ndarray, to_candidate: np.ndarray, scale: float, config: CheckConfig
) -> float | None:
    """Similarity (0-1) of the product's text read in the candidate and in the original; None if unread.

    Both are read from the product box at the original's full resolution (the candidate's resampled onto it).
    A product shown smaller (``scale`` candidate px per original px, below 0.95) is compared with the original
    softened to the same detail, read again: text too small to read is not garbled.
    """
    crop = reference.product
    size = (round(crop.rgb.shape[1] / crop.k), round(crop.rgb.shape[0] / crop.k))
    x0, y0 = (int(v) for v in crop.origin)
    box = reference.full[y0 : y0 + size[1], x0 : x0 + size[0]]
    if not reference.text_read:
        reference.text = read_text(box, config.ocr_languages)
        reference.text_read = True
    text = reference.text
    if text and scale < 0.95:
        text = read_text(_soften(box, max(scale, 0.05)), config.ocr_languages)
    if not text or len(text) < 4:
        return None
    to_full = (np.vstack([to_candidate, [0, 0, 1]]) @ np.diag([crop.k, crop.k, 1.0]))[
        :2
    ]  # box px -> candidate
    resampled = cv2.warpAffine(
        candidate,
        to_full,
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return difflib.SequenceMatcher(None, text, read_text(resampled, config.ocr_languages)).ratio()


def printed_area(image: np.ndarray, mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Box (x0, y0, x1, y1) of the product's printed part: where the product has fine texture (text, logo)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    texture = cv2.GaussianBlur(np.abs(cv2.Laplacian(gray, cv2.CV_32F)), (0, 0), 3.0)
    inside = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    if inside.sum() < 50:
        return None
    printed = inside & (texture > max(4.0, float(np.percentile(texture[inside], 75))))
    if printed.sum() < 20:
        return None
    ys, xs = np.nonzero(printed)
    x0, x1 = np.percentile(xs, [2, 98]).astype(int)
    y0, y1 = np.percentile(ys, [2, 98]).astype(int)
    return int(x0), int(y0), int(x1) + 1, int(y1) + 1
