"""The ``synthetic`` backend: composite the product onto procedural scenes and inject known defects.

CPU only, no model. Each candidate's injected defect tags are ground truth, which serves the demo,
tests, gold tasks and pre-annotations. Orchestration (what to make, storage, sharding, resume)
lives in ``medgen.generation.generate``; this module only turns requests into images.

Which candidates of a source are defective is decided from the source id alone, so each of the
four candidates knows its role without seeing the others (and a resumed or sharded run agrees);
which defects, and the scene, come from the candidate's own seed. A clean candidate keeps the
source's product pixels exactly (resized), rests on the surface, is fully in frame at a plausible
scale, and casts shadows that agree with the scene's light.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from medgen.errors import MedgenError
from medgen.generation.backends.base import GeneratedImage, GenerationRequest
from medgen.generation.backends.scenes import Layout, draw_layout, render_scene
from medgen.generation.config import SyntheticOptions
from schemas import GenerationProvenance
from schemas.regions import Region, region_kinds
from schemas.taxonomy import NUM_CANDIDATES, TAXONOMY

VERSION = "1"
"""Bumped whenever the same seed would draw a different image."""
RECIPE = "composite"

_CONFLICTS = ({"shadow_missing", "shadow_direction_wrong"}, {"shadow_missing", "floating"})
"""Pairs that cannot be told apart in one image (a floating product is seen by its shadow)."""

NORMAL_HEIGHT = (0.36, 0.55)
"""Product height as a share of the frame for a plausible scale; ``scale_wrong`` leaves this range."""
MAX_NORMAL_WIDTH = 0.6


def defective_slots(source_id: str, options: SyntheticOptions, base_seed: int = 0) -> frozenset[int]:
    """Slots of a source that get defects: fixed by the source id and the run's seed, so every candidate agrees."""
    return _defective_slots(source_id, base_seed, *options.defective_per_source)


@functools.lru_cache(maxsize=4096)
def _defective_slots(source_id: str, base_seed: int, low: int, high: int) -> frozenset[int]:
    rng = np.random.default_rng(
        int(hashlib.sha256(f"synthetic-roles:{base_seed}:{source_id}".encode()).hexdigest()[:16], 16)
    )
    count = int(rng.integers(low, high + 1))
    return frozenset(int(s) for s in rng.permutation(NUM_CANDIDATES)[:count])


def plan_defects(
    request: GenerationRequest, options: SyntheticOptions, has_detail: bool = True
) -> dict[str, float]:
    """Defect tag -> strength for one candidate; empty for a clean one."""
    if request.slot not in defective_slots(request.source.id, options, request.base_seed):
        return {}
    rng = np.random.default_rng([request.seed, 7])
    allowed = [d for d in options.defects if has_detail or d != "text_garbled"]
    if not allowed:
        allowed = list(options.defects)
    wanted = 1 + int(rng.binomial(options.max_defects_per_candidate - 1, 0.3))
    chosen: list[str] = []
    for kind in rng.permutation(allowed):
        if len(chosen) == wanted:
            break
        if any({str(kind), other} in _CONFLICTS for other in chosen):
            continue
        chosen.append(str(kind))
    low, high = options.strength
    return {kind: round(float(rng.uniform(low, high)), 3) for kind in chosen}


@dataclass
class Product:
    """The source's product cut out to its mask's bounding box."""

    rgb: np.ndarray  # uint8 HxWx3
    mask: np.ndarray  # uint8 HxW, 255 = product
    has_detail: bool  # enough texture (text, print) that blurring it is visible


def cut_out(image: Image.Image, mask: Image.Image, source_id: str = "") -> Product:
    """Crop the source to its product mask's bounding box."""
    rgb = np.asarray(image.convert("RGB"))
    alpha = np.asarray(mask.convert("L"))
    if alpha.shape != rgb.shape[:2]:
        alpha = cv2.resize(alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(alpha >= 128)
    if len(ys) == 0:
        raise MedgenError(
            f"source {source_id[:12]} has an empty product mask: re-add it with an alpha channel"
        )
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop, crop_mask = rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    inner = cv2.erode(crop_mask, np.ones((5, 5), np.uint8)) >= 128
    detail = float(cv2.Laplacian(grey, cv2.CV_32F)[inner].var()) if inner.any() else 0.0
    return Product(
        rgb=np.ascontiguousarray(crop), mask=np.ascontiguousarray(crop_mask), has_detail=detail > 40.0
    )


@dataclass
class Rendered:
    image: Image.Image
    defects: list[str]  # tags actually visible
    extra: dict  # scene, placement and defect parameters
    regions: list[Region]  # where each visible defect is (none for a defect of the whole frame)
    description: str


def render_candidate(product: Product, seed: int, defects: dict[str, float], size: int = 512) -> Rendered:
    """Composite ``product`` onto the scene of ``seed``, injecting ``defects`` (tag -> strength).

    The scene and the nominal placement depend only on the seed: the same seed with and without
    a defect differs only by that defect. Each random draw happens in a fixed order (three generators:
    scene, placement, defects), so a candidate is the same bytes on every machine and every run.
    """
    scene_rng = np.random.default_rng([seed, 0])
    place_rng = np.random.default_rng([seed, 1])
    defect_rng = np.random.default_rng([seed, 2])
    params: dict[str, dict] = {kind: {"strength": strength} for kind, strength in defects.items()}
    layout = draw_layout(scene_rng, size)
    scale, gap = _size(product, defects, params, size, place_rng, defect_rng)
    ph, pw = product.mask.shape
    w, h = max(2, round(pw * scale)), max(2, round(ph * scale))
    rgb = cv2.resize(product.rgb, (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(product.mask, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    rgb, alpha = _alter(rgb, alpha, defects, params, layout.light, defect_rng)
    h, w = alpha.shape
    fit = size - 2 * round(size * 0.02)
    if "product_cropped" not in defects and w > fit:  # a large or warped product still fits the frame
        factor = fit / w
        w, h = fit, max(2, round(h * factor))
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        scale *= factor
    x0, y0, base_y = _position(layout, size, w, h, gap, defects, params, place_rng, defect_rng)

    # Scene, then shadows cast from where the product touches the surface.
    shadow = None
    if "shadow_missing" not in defects:
        direction = -layout.light if "shadow_direction_wrong" in defects else layout.light
        shadow = _product_shadow(alpha, x0, base_y, size, direction, place_rng)
    textured = "repeated_texture" in defects
    scene = render_scene(scene_rng, size, layout, (x0, x0 + w), textured=textured, shadow=shadow)
    image = scene.image
    # Extension defects: a band on the side away from the product, as an outpainted region would be.
    band = _free_band(x0, w, size)
    if "repeated_texture" in defects and band is not None:
        params["repeated_texture"].update(_repeat(image, band, defects["repeated_texture"]))
    if "visible_seam" in defects and band is not None:
        params["visible_seam"].update(_seam(image, band, defects["visible_seam"], defect_rng))
    _paste(image, rgb, alpha, x0, y0)
    visible = [kind for kind in defects if _is_visible(kind, params, alpha, x0, size, band)]
    regions = _regions(visible, (x0, y0, w, h, base_y), size, band, shadow)
    extra = {
        "version": VERSION,
        "scene": scene.params,
        "placement": {"x": x0, "y": y0, "width": w, "height": h, "base_y": base_y, "scale": round(scale, 5)},
        "defects": {kind: params[kind] for kind in visible},
    }
    return Rendered(
        image=Image.fromarray(image),
        defects=sorted(visible),
        extra=extra,
        description=scene.description,
        regions=regions,
    )


def _regions(
    visible: list[str],
    placement: tuple[int, int, int, int, int],
    size: int,
    band: tuple[int, int] | None,
    shadow: np.ndarray | None,
) -> list[Region]:
    """Where each injected defect shows, as the labeling page marks it: the product's visible box for what
    changed the product or its place (a floating one down to its support), the shadow's box, the point under
    the product where a missing shadow belongs, a strip around a seam's column, a repeated band."""
    x0, y0, w, h, base_y = placement
    product = (max(0, x0), max(0, y0), min(size, x0 + w), min(size, y0 + h))
    seam = size * 0.03
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for tag in visible:
        if tag == "shadow_missing":
            x, y = min(max(x0 + w / 2, 0), size), min(base_y, size)
            boxes[tag] = (x, y, x, y)
        elif tag == "shadow_direction_wrong" and shadow is not None and (shadow > 0.05).any():
            ys, xs = np.nonzero(shadow > 0.05)  # half resolution
            boxes[tag] = (2 * xs.min(), 2 * ys.min(), 2 * xs.max() + 2, 2 * ys.max() + 2)
        elif tag == "visible_seam" and band is not None:
            edge = band[1] if band[0] == 0 else band[0]
            boxes[tag] = (max(0, edge - seam), 0, min(size, edge + seam), size)
        elif tag == "repeated_texture" and band is not None:
            boxes[tag] = (band[0], 0, band[1], size)
        elif region_kinds().get(tag) is not None:
            bottom = min(size, max(product[3], base_y)) if tag == "floating" else product[3]
            boxes[tag] = (product[0], product[1], product[2], bottom)
    return [
        Region(tag=tag, box=tuple(min(max(v / size, 0.0), 1.0) for v in box))  # type: ignore[arg-type]
        for tag, box in boxes.items()
    ]


def _size(
    product: Product,
    defects: dict[str, float],
    params: dict[str, dict],
    size: int,
    place_rng: np.random.Generator,
    defect_rng: np.random.Generator,
) -> tuple[float, int]:
    """(scale of the cut-out, floating gap in pixels): plausible unless ``scale_wrong``; a floating product
    also needs room for its gap."""
    gap = 0
    if "floating" in defects:
        gap = round(size * (0.05 + 0.08 * defects["floating"]))
        params["floating"].update(gap_px=gap)
    ph, pw = product.mask.shape
    target_h = size * place_rng.uniform(*NORMAL_HEIGHT)
    scale = min(target_h / ph, size * MAX_NORMAL_WIDTH / pw)
    if "scale_wrong" in defects:
        s = defects["scale_wrong"]
        big = defect_rng.random() < 0.5
        share = min(0.62 + 0.28 * s, 0.9 - gap / size) if big else (0.26 - 0.14 * s)
        scale = min(size * share / ph, size * 0.97 / pw) if big else size * share / ph
        params["scale_wrong"].update(direction="large" if big else "small")
    return scale, gap


def _alter(
    rgb: np.ndarray,
    alpha: np.ndarray,
    defects: dict[str, float],
    params: dict[str, dict],
    light: int,
    defect_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The product's appearance defects, on the resized cut-out (a warp widens it)."""
    h, w = alpha.shape
    if "product_warped" in defects:
        rgb, alpha, warp = _warp(rgb, alpha, defects["product_warped"], defect_rng)
        params["product_warped"].update(warp)
    if "text_garbled" in defects:
        sigma = max(w, h) * (0.006 + 0.012 * defects["text_garbled"])
        rgb = _blur_inside(rgb, alpha, sigma)
        params["text_garbled"].update(sigma_px=round(sigma, 2))
    if "color_shifted" in defects:
        rgb, shift = _colour_shift(rgb, defects["color_shifted"], defect_rng)
        params["color_shifted"].update(shift)
    if "lighting_inconsistent" in defects:
        rgb, lighting = _relight(rgb, -light, defects["lighting_inconsistent"])
        params["lighting_inconsistent"].update(lighting)
    return rgb, alpha


def _position(
    layout: Layout,
    size: int,
    w: int,
    h: int,
    gap: int,
    defects: dict[str, float],
    params: dict[str, dict],
    place_rng: np.random.Generator,
    defect_rng: np.random.Generator,
) -> tuple[int, int, int]:
    """(x, y, base line) of the product: its bottom rests on the surface (above it by ``gap`` when floating);
    ``product_cropped`` pushes part of it out of the frame."""
    margin = round(size * 0.04)
    low_base = max(layout.horizon + (size - layout.horizon) * 0.2, margin + h + gap)
    high_base = size - margin
    base_y = (
        round(place_rng.uniform(low_base, high_base))
        if low_base < high_base
        else round(min(low_base, size - 2))
    )
    x_free = size - w - 2 * round(size * 0.06)
    cx = place_rng.uniform(0.3, 0.7)
    x0 = round(size * 0.06 + max(0, x_free) * cx) if x_free > 0 else (size - w) // 2
    if "product_cropped" in defects:
        outside = 0.2 + 0.25 * defects["product_cropped"]
        side = 1 if defect_rng.random() < 0.5 else -1
        x0 = round(size - w * (1 - outside)) if side > 0 else round(-w * outside)
        params["product_cropped"].update(
            side="right" if side > 0 else "left", share_outside=round(outside, 3)
        )
    return x0, base_y - h - gap, base_y


class SyntheticBackend:
    """Procedural scene compositing with known defects."""

    name = "synthetic"

    def __init__(self, options: SyntheticOptions | None = None) -> None:
        self.options = options or SyntheticOptions()
        self._products: OrderedDict[str, Product] = OrderedDict()  # recent cut-outs: a source spans batches

    def _product(self, request: GenerationRequest) -> Product:
        product = self._products.get(request.source.id)
        if product is None:
            product = cut_out(request.image, request.mask, request.source.id)
            self._products[request.source.id] = product
            if len(self._products) > 16:
                self._products.popitem(last=False)
        return product

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """Make one candidate per request, in order."""
        results = []
        for request in requests:
            product = self._product(request)
            defects = plan_defects(request, self.options, product.has_detail)
            rendered = render_candidate(product, request.seed, defects, self.options.resolution)
            extra = {**rendered.extra, "planned": defects, "options": self.options.model_dump(mode="json")}
            provenance = GenerationProvenance(
                backend=self.name,
                model_id="synthetic",
                model_revision=f"synthetic-v{VERSION}",
                recipe=RECIPE,
                prompt=rendered.description,
                seed=request.seed,
                width=self.options.resolution,
                height=self.options.resolution,
                extra=json.dumps(extra, sort_keys=True),
            )
            results.append(
                GeneratedImage(
                    request,
                    rendered.image,
                    provenance,
                    injected_defects=rendered.defects,
                    injected_regions=rendered.regions,
                )
            )
        return results


def _warp(
    rgb: np.ndarray, alpha: np.ndarray, strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Bend the product sideways and squeeze one end (keystone), as a diffusion model distorts a box."""
    h, w = alpha.shape
    bow = w * (0.08 + 0.14 * strength) * (1 if rng.random() < 0.5 else -1)
    squeeze = 0.1 + 0.25 * strength
    pad = int(abs(bow)) + 2
    out_w = w + 2 * pad
    ys, xs = np.mgrid[0:h, 0:out_w].astype(np.float32)
    t = ys / max(h - 1, 1)
    width_factor = 1.0 - squeeze * (1.0 - t)  # narrower at the top
    map_x = (xs - pad - w / 2 - bow * np.sin(np.pi * t)) / width_factor + w / 2
    warped_rgb = cv2.remap(rgb, map_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped_alpha = cv2.remap(
        alpha, map_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return (
        warped_rgb,
        warped_alpha,
        {"bow_px": round(float(bow), 1), "squeeze": round(squeeze, 3), "pad_px": pad},
    )


def _blur_inside(rgb: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the print inside the product's outline (the outline itself stays sharp)."""
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
    inner = cv2.erode((alpha > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    out = rgb.copy()
    out[inner] = blurred[inner]
    return out


def _colour_shift(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Rotate hues and tint (the tint also shows on white packaging)."""
    hue = int(round((40 + 60 * strength) / 2)) * (1 if rng.random() < 0.5 else -1)  # OpenCV hue: 0..179
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + hue) % 180).astype(np.uint8)
    shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    tint = np.asarray(
        ((1.0, 0.78, 0.6), (0.65, 0.85, 1.0), (0.75, 1.0, 0.7))[int(rng.integers(3))], np.float32
    )
    tint = 1.0 - (1.0 - tint) * strength
    out = np.clip(shifted * tint, 0, 255).astype(np.uint8)
    return out, {"hue_deg": hue * 2, "tint": [round(float(t), 3) for t in tint]}


def _relight(rgb: np.ndarray, towards: int, strength: float) -> tuple[np.ndarray, dict]:
    """Light the product from ``towards`` (+1 left, -1 right), i.e. against the scene, and darker."""
    w = rgb.shape[1]
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    gain = (0.8 - 0.2 * strength) * (1.0 + (0.25 + 0.35 * strength) * towards * -xs)
    out = np.clip(rgb.astype(np.float32) * gain[None, :, None], 0, 255).astype(np.uint8)
    return out, {
        "lit_from": "left" if towards > 0 else "right",
        "gain_min": round(float(gain.min()), 3),
        "gain_max": round(float(gain.max()), 3),
    }


def _product_shadow(
    alpha: np.ndarray, x0: int, base_y: int, size: int, direction: int, rng: np.random.Generator
) -> np.ndarray:
    """Shadow opacity map at half resolution: a dark contact patch plus the silhouette cast on the surface.

    The silhouette is flipped behind the product, shortened and sheared away from the light: a
    point at height ``v`` above the base lands at ``(x + shear*v*direction, base_y - k*v)``.
    """
    h, w = alpha.shape
    half = size // 2
    k, shear = rng.uniform(0.25, 0.45), rng.uniform(0.5, 0.9)
    matrix = 0.5 * np.float32([[1, -shear * direction, x0 + shear * direction * h], [0, k, base_y - k * h]])
    cast = cv2.warpAffine(alpha, matrix, (half, half), flags=cv2.INTER_AREA, borderValue=0)
    cast = cv2.GaussianBlur(cast, (0, 0), size / 180) * rng.uniform(0.35, 0.5)
    bottom = np.nonzero(alpha[max(0, h - max(2, h // 30)) :].max(axis=0) > 0.5)[0]
    if len(bottom):  # drawn and blurred in a window around the foot only
        left, right = (x0 + bottom.min()) // 2, (x0 + bottom.max()) // 2
        axes = (max(1, (right - left) // 2 + 1), max(1, size // 180))
        pad = axes[1] + 4
        wx0, wy0 = max(0, left - pad), max(0, base_y // 2 - pad)
        wx1, wy1 = min(half, right + pad + 1), min(half, base_y // 2 + pad + 1)
        if wx0 < wx1 and wy0 < wy1:
            contact = np.zeros((wy1 - wy0, wx1 - wx0), np.float32)
            centre = ((left + right) // 2 - wx0, base_y // 2 - wy0)
            cv2.ellipse(contact, centre, axes, 0, 0, 360, 0.6, -1)
            window = cast[wy0:wy1, wx0:wx1]
            np.maximum(window, cv2.GaussianBlur(contact, (0, 0), size / 500), out=window)
    return cast


def _free_band(x0: int, w: int, size: int) -> tuple[int, int] | None:
    """Columns [start, stop) on the wider empty side of the product, as an outpainted strip."""
    margin = size // 25
    left, right = x0 - margin, size - (x0 + w + margin)
    width = max(left, right)
    if width < size // 8:
        return None
    width = min(width, size // 3)
    return (0, width) if left >= right else (size - width, size)


def _seam(image: np.ndarray, band: tuple[int, int], strength: float, rng: np.random.Generator) -> dict:
    """Give the band a different exposure and white balance: a hard vertical colour step at its edge."""
    gain = 1.0 + (0.1 + 0.12 * strength) * (1 if rng.random() < 0.5 else -1)
    cast = rng.normal(0, 0.06 * strength, 3).astype(np.float32)
    region = image[:, band[0] : band[1]]
    region[:] = cv2.multiply(region, tuple(float(g) for g in gain + cast) + (0.0,))
    edge = band[1] if band[0] == 0 else band[0]
    return {"column": int(edge), "gain": round(float(gain), 3), "cast": [round(float(c), 3) for c in cast]}


def _repeat(image: np.ndarray, band: tuple[int, int], strength: float) -> dict:
    """Fill the band by mirror-tiling a strip of the neighbouring scene, as a lazy outpainter would."""
    period = max(8, int(image.shape[1] * (0.09 - 0.04 * strength)))
    start, stop = band
    # The strip next to the band, its columns ordered from the band's edge outwards.
    outward = image[:, stop : stop + period] if start == 0 else image[:, start - period : start][:, ::-1]
    tile = np.concatenate([outward, outward[:, ::-1]], axis=1)
    filled = np.tile(tile, (1, -(-(stop - start) // tile.shape[1]), 1))[:, : stop - start]
    image[:, start:stop] = filled[:, ::-1] if start == 0 else filled
    return {"period_px": period, "band": [int(start), int(stop)]}


def _paste(image: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-composite the product at (x0, y0), clipped to the frame (in place; opaque pixels copied exactly)."""
    size = image.shape[0]
    h, w = alpha.shape
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(size, x0 + w), min(size, y0 + h)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    a = np.ascontiguousarray(alpha[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0])
    fg = np.ascontiguousarray(rgb[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0])
    region = image[iy0:iy1, ix0:ix1]
    region[:] = cv2.blendLinear(fg, np.ascontiguousarray(region), a, 1.0 - a)


def _is_visible(
    kind: str, params: dict, alpha: np.ndarray, x0: int, size: int, band: tuple[int, int] | None
) -> bool:
    """Label only what the image shows: a crop must cut the product, a seam needs room for its band."""
    if kind == "product_cropped":
        w = alpha.shape[1]
        columns = alpha.sum(axis=0)
        inside = columns[max(0, -x0) : max(0, min(w, size - x0))].sum()
        return inside < 0.9 * columns.sum()
    if kind in ("visible_seam", "repeated_texture"):
        return band is not None
    return kind in TAXONOMY.all_tags()
