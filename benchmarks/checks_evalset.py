"""The checks' evaluation set: candidates made by perturbations of our own, each with its known tag and severity.

None of these is the synthetic backend's injection. An original product photo (``draw_sample``, with its
true mask) becomes a candidate the way medgen's two diffusers recipes make one:

- ``inplace`` (the ``background`` recipe): the product kept where it was, a new scene around it;
- ``outpaint``: the original photo centred on a larger canvas whose new area continues its backdrop.

Then at most one perturbation, with a severity in [0.3, 1] (0.3 is still plain to a person looking):

    product_warped    a smooth bend of the product (sine displacement, 3-7 % of its width)
    color_shifted     the product's hue turned 14-40 degrees, or its white balance pulled
    text_garbled      the printed area blurred or pixelated
    product_cropped   the frame moved so that 10-40 % of the product falls outside
    scale_wrong       the product 25-60 % larger or 20-38 % smaller, standing on the same point
    occluded          an opaque object covering 10-35 % of the product
    visible_seam      outpaint: the new area's exposure and white balance stepped; in place: a ring of the
                      original backdrop left around the product (3-9 px)
    repeated_texture  outpaint: the new area filled by tiling a strip of the photo's border
    appearance_other  the product gone: a scene without it (in place), or its place painted over (outpaint)

Untouched candidates (``tag`` None) get only what a real pipeline does to any image: JPEG compression at
quality 85-95, a global exposure change of up to 6 %, sensor noise; and their scenes include tiled and
striped walls, so a repetition the scene really has is not counted as a defect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

TAGS = (
    "appearance_other",
    "product_warped",
    "color_shifted",
    "text_garbled",
    "product_cropped",
    "scale_wrong",
    "occluded",
    "visible_seam",
    "repeated_texture",
)
OUTPAINT_ONLY = ("repeated_texture",)


@dataclass
class Item:
    """One evaluation candidate: original, its product mask, the candidate, and what was done to it."""

    original: np.ndarray  # RGB uint8
    mask: np.ndarray  # bool, the original's product
    candidate: np.ndarray  # RGB uint8
    tag: str | None
    severity: float
    style: str  # inplace | outpaint


def build(n: int, seed: int = 0, untouched_share: float = 0.34, size: int | None = None) -> list[Item]:
    """``n`` items: about ``untouched_share`` untouched, the rest spread evenly over ``TAGS``.

    ``size``: resize every original to this long side first (for throughput at 1024 px).
    """
    rng = np.random.default_rng(seed)
    untouched = round(n * untouched_share)
    tags: list[str | None] = [None] * untouched + [TAGS[i % len(TAGS)] for i in range(n - untouched)]
    order = rng.permutation(len(tags))
    return [make_item(np.random.default_rng([seed, int(i)]), tags[i], size) for i in order]


def draw_original(rng: np.random.Generator, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A sample product photo (RGB) and its true mask (bool); ``size``: its long side resized to this."""
    from medgen.sources.samples import draw_sample

    while True:  # a product the photo's frame cuts would be extended by an outpainter: not a clean original
        image, mask_image = draw_sample(rng)
        mask = np.asarray(mask_image) >= 128
        if not (mask[:3].any() or mask[-3:].any() or mask[:, :3].any() or mask[:, -3:].any()):
            break
    original = np.asarray(image.convert("RGB"))
    if size is not None:
        factor = size / max(original.shape[:2])
        dims = (round(original.shape[1] * factor), round(original.shape[0] * factor))
        original = cv2.resize(original, dims, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), dims, interpolation=cv2.INTER_NEAREST).astype(bool)
    return original, mask


def make_item(
    rng: np.random.Generator,
    tag: str | None,
    size: int | None = None,
    original: tuple[np.ndarray, np.ndarray] | None = None,
) -> Item:
    """One candidate with ``tag`` (None: untouched), of a new original or of ``original`` (RGB, mask)."""
    original, mask = original if original is not None else draw_original(rng, size)
    style = (
        "outpaint" if tag in OUTPAINT_ONLY or (tag != "product_cropped" and rng.random() < 0.4) else "inplace"
    )
    severity = float(rng.uniform(0.3, 1.0)) if tag else 0.0
    product, alpha = original.copy(), mask.astype(np.float32)
    if tag == "product_warped":
        product, alpha = _warp(product, alpha, mask, severity, rng)
    elif tag == "color_shifted":
        product = _recolour(product, mask, severity, rng)
    elif tag == "text_garbled":
        product = _garble(product, mask, severity, rng)
    elif tag == "scale_wrong":
        product, alpha = _rescale(product, alpha, mask, severity, rng)
    elif tag == "occluded":
        product, alpha = _occlude(product, alpha, mask, severity, rng)
    elif tag == "appearance_other":
        alpha = np.zeros_like(alpha)
    if style == "inplace":
        candidate = _inplace(
            original, mask, product, alpha, rng, halo=severity if tag == "visible_seam" else 0
        )
    else:
        candidate = _outpaint(original, product, alpha, mask, rng, tag, severity)
    if tag == "product_cropped":
        candidate = _crop(candidate, mask, severity, rng)
    candidate = _camera(candidate, rng)
    return Item(original, mask, candidate, tag, severity, style)


# ---- perturbations of the product -------------------------------------------------------------------


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _warp(product, alpha, mask, severity, rng):
    x0, y0, x1, y1 = _box(mask)
    h, w = mask.shape
    amplitude = (0.03 + 0.04 * severity) * (x1 - x0)
    wavelength = (y1 - y0) * rng.uniform(0.8, 1.6)
    phase = rng.uniform(0, 2 * np.pi)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    inside = np.clip((gy - y0) / max(1, y1 - y0), 0, 1)
    dx = amplitude * np.sin(2 * np.pi * (gy - y0) / wavelength + phase) * np.sin(np.pi * inside)
    if rng.random() < 0.5:  # or a bulge across the width
        dx = dx + amplitude * 0.6 * np.sin(np.pi * inside) * np.sign(gx - (x0 + x1) / 2)
    map_x, map_y = (gx - dx).astype(np.float32), gy
    product = cv2.remap(product, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return product, alpha


def _recolour(product, mask, severity, rng):
    """A hue turn, or a colour cast where the turn would not show (a pale, grey product)."""
    turned = _turn(product, severity, rng) if rng.random() < 0.6 else _cast(product, severity, rng)
    lab = lambda x: cv2.cvtColor(x.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[mask]  # noqa: E731
    if np.linalg.norm(lab(turned) - lab(product), axis=1).mean() < 6:
        turned = _cast(product, 1.0, rng)
    return turned


def _turn(product, severity, rng):
    hsv = cv2.cvtColor(product, cv2.COLOR_RGB2HSV_FULL).astype(np.int32)
    turn = int((14 + 26 * severity) / 360 * 256) * (1 if rng.random() < 0.5 else -1)
    hsv[..., 0] = (hsv[..., 0] + turn) % 256
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


def _cast(product, severity, rng):
    gains = 1 + (0.08 + 0.14 * severity) * rng.choice([-1, 1], 3) * rng.uniform(0.5, 1, 3)
    gains /= gains.mean()  # a colour cast, not an exposure change
    return np.clip(product * gains, 0, 255).astype(np.uint8)


def _garble(product, mask, severity, rng):
    from medgen.checks.measure import printed_area

    box = printed_area(product, mask)
    if box is None:
        box = _box(mask)
    x0, y0, x1, y1 = box
    region = product[y0:y1, x0:x1]
    out = product.copy()
    if rng.random() < 0.5:
        sigma = 1.2 + 2.8 * severity
        out[y0:y1, x0:x1] = cv2.GaussianBlur(region, (0, 0), sigma)
    else:
        block = max(3, int(round(3 + 7 * severity)))
        small = cv2.resize(
            region,
            (max(1, region.shape[1] // block), max(1, region.shape[0] // block)),
            interpolation=cv2.INTER_AREA,
        )
        out[y0:y1, x0:x1] = cv2.resize(
            small, (region.shape[1], region.shape[0]), interpolation=cv2.INTER_NEAREST
        )
    keep = mask[..., None]
    return np.where(keep, out, product)


def _rescale(product, alpha, mask, severity, rng):
    x0, y0, x1, y1 = _box(mask)
    h, w = mask.shape
    anchor = ((x0 + x1) / 2, y1)  # standing on the same point
    change = 1 + (0.25 + 0.35 * severity)
    # Larger only as far as the frame allows (a product grown out of it would be cropped as well).
    room = min(
        anchor[0] / max(1, anchor[0] - x0), (w - anchor[0]) / max(1, x1 - anchor[0]), y1 / max(1, y1 - y0)
    )
    factor = change if rng.random() < 0.5 and change <= 0.97 * room else 1 / change
    matrix = np.float32([[factor, 0, anchor[0] * (1 - factor)], [0, factor, anchor[1] * (1 - factor)]])
    product = cv2.warpAffine(product, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, matrix, (w, h), flags=cv2.INTER_LINEAR)
    return product, alpha


def _occlude(product, alpha, mask, severity, rng):
    x0, y0, x1, y1 = _box(mask)
    area = mask.sum() * (0.1 + 0.25 * severity)
    aspect = rng.uniform(0.6, 1.6)
    ow, oh = int(np.sqrt(area * aspect)), int(np.sqrt(area / aspect))
    out, a = product.copy(), alpha.copy()
    colour = tuple(int(c) for c in rng.integers(20, 235, 3))
    rectangle = rng.random() < 0.5
    for _ in range(20):  # somewhere it covers at least 8 % of the product (else it is not an occlusion)
        cx = int(rng.uniform(x0, x1))
        cy = int(rng.uniform(y0 + oh / 2, max(y0 + oh / 2 + 1, y1)))
        shape = np.zeros(mask.shape, np.uint8)
        if rectangle:
            cv2.rectangle(shape, (cx - ow // 2, cy - oh // 2), (cx + ow // 2, cy + oh // 2), 1, -1)
        else:
            cv2.ellipse(shape, (cx, cy), (max(2, ow // 2), max(2, oh // 2)), 0, 0, 360, 1, -1)
        if (shape.astype(bool) & mask).sum() >= 0.08 * mask.sum():
            break
    shade = np.linspace(0.85, 1.1, mask.shape[1], dtype=np.float32)[None, :, None]
    paint = np.clip(np.array(colour, np.float32)[None, None] * shade, 0, 255).astype(np.uint8)
    paint = np.broadcast_to(paint, out.shape)
    out[shape > 0] = paint[shape > 0]
    a[shape > 0] = 1.0  # the object stands in front of product and scene alike
    return out, a


# ---- making the candidate -----------------------------------------------------------------------------


def _scene(rng, width, height):
    from medgen.generation.backends.scenes import draw_layout, render_scene

    side = max(width, height)
    layout = draw_layout(rng, side)
    scene = render_scene(rng, side, layout, (0, 0), textured=rng.random() < 0.25).image
    return np.ascontiguousarray(scene[:height, :width])


def _inplace(original, mask, product, alpha, rng, halo):
    h, w = mask.shape
    scene = _scene(rng, w, h)
    if halo:  # the original backdrop left in a ring around the product: the classic inpainting seam
        width = max(2, int(round((3 + 6 * halo) * max(h, w) / 512)))
        ring = cv2.dilate(
            mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2)
        )
        scene = np.where(ring[..., None] > 0, original, scene)
    a = cv2.GaussianBlur(np.clip(alpha, 0, 1), (3, 3), 0)[..., None]
    return (product * a + scene * (1 - a)).astype(np.uint8)


def _outpaint(original, product, alpha, mask, rng, tag, severity):
    h, w = mask.shape
    a = np.clip(alpha, 0, 1)[..., None]
    backdrop = original
    if tag in (
        "scale_wrong",
        "product_warped",
        "appearance_other",
    ):  # its old place shows backdrop, not the product
        hole = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8))
        backdrop = cv2.inpaint(original, hole, 5, cv2.INPAINT_TELEA)
    photo = (product * a + backdrop * (1 - a)).astype(np.uint8)  # the perturbed product in its own photo
    margin = rng.uniform(1.25, 1.6)
    cw, ch = int(w * margin), int(h * margin)
    left, top = (cw - w) // 2, (ch - h) // 2
    grown = cv2.copyMakeBorder(photo, top, ch - h - top, left, cw - w - left, cv2.BORDER_REPLICATE)
    new = np.ones((ch, cw), bool)
    new[top : top + h, left : left + w] = False
    # The new area continues the backdrop: smoothed replicate with a little texture, as an outpainter would.
    smooth = cv2.GaussianBlur(grown, (0, 0), 6)
    noise = rng.normal(0, 2.0, grown.shape).astype(np.float32)
    filled = np.clip(smooth.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    canvas = np.where(new[..., None], filled, grown)
    if tag == "visible_seam":
        gain = 1 + (0.06 + 0.12 * severity) * (1 if rng.random() < 0.5 else -1)
        cast = rng.normal(0, 0.04 * severity, 3)
        stepped = np.clip(canvas.astype(np.float32) * (gain + cast), 0, 255).astype(np.uint8)
        canvas = np.where(new[..., None], stepped, canvas)
    elif tag == "repeated_texture":
        canvas = _tile_new_area(canvas, new, original, rng, severity)
    return canvas


def _tile_new_area(canvas, new, original, rng, severity):
    """The new area filled by repeating a strip of the photo's border (period 12-40 px)."""
    period = int(40 - 28 * severity)
    strip = original[:, :period] if rng.random() < 0.5 else original[:, -period:]
    strip = cv2.resize(strip, (period, canvas.shape[0]), interpolation=cv2.INTER_LINEAR)
    # Give it the texture an outpainter's repeat has: the strip's detail, amplified.
    detail = strip.astype(np.float32) - cv2.GaussianBlur(strip.astype(np.float32), (0, 0), 3)
    pattern = np.clip(strip.astype(np.float32) + 3 * detail + rng.normal(0, 8, strip.shape), 0, 255)
    stripes = np.linspace(-18, 18, period, dtype=np.float32)[None, :, None]
    pattern = np.clip(pattern + stripes, 0, 255).astype(np.uint8)
    tiled = np.tile(pattern, (1, -(-canvas.shape[1] // period), 1))[:, : canvas.shape[1]]
    return np.where(new[..., None], tiled, canvas)


def _crop(candidate, mask, severity, rng):
    """Move the frame so that a share of the product leaves it (the canvas size is kept)."""
    h, w = candidate.shape[:2]
    oh, ow = mask.shape
    top, left = (h - oh) // 2, (w - ow) // 2  # where the original sits (0, 0 in place)
    x0, y0, x1, y1 = _box(mask)
    share = 0.1 + 0.3 * severity
    side = int(rng.integers(4))
    if side in (0, 1):  # left or right
        shift = int(round((x1 - x0) * share)) + (x0 + left if side == 0 else w - (x1 + left))
        matrix = np.float32([[1, 0, -shift if side == 0 else shift], [0, 1, 0]])
    else:
        shift = int(round((y1 - y0) * share)) + (y0 + top if side == 2 else h - (y1 + top))
        matrix = np.float32([[1, 0, 0], [0, 1, -shift if side == 2 else shift]])
    return cv2.warpAffine(candidate, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)  # the far side: scene


def _camera(candidate, rng):
    """What any pipeline does to an image: exposure, noise, JPEG."""
    out = candidate.astype(np.float32) * rng.uniform(0.94, 1.06) + rng.normal(0, 1.5, candidate.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    quality = int(rng.integers(85, 96))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def add_to_workspace(
    workspace: Any, tags_per_source: list[list[str | None]], seed: int = 1, size: int | None = None
) -> list[str]:
    """Sources drawn and added to ``workspace`` (masks estimated as `sources add` does), each with candidates
    of these tags stored as a diffusers ``background`` run would store them; returns the source ids (a
    source `sources add` found a near-duplicate of is skipped)."""
    from PIL import Image

    from medgen.sources.ingest import add_sources
    from medgen.workspace.store import png_bytes
    from schemas import Candidate, GenerationProvenance

    rng = np.random.default_rng(seed)
    folder = workspace.root.parent / f"photos-{len(workspace.catalog.sources())}"
    folder.mkdir(parents=True)
    originals = [draw_original(rng, size) for _ in tags_per_source]
    for index, (image, _) in enumerate(originals):
        Image.fromarray(image).save(folder / f"p{index:04d}.png", compress_level=1)
    add_sources(workspace, sorted(folder.iterdir()))
    by_name = {s.original_name: s for s in workspace.catalog.sources()}
    ids, candidates = [], []
    for index, (original, tags) in enumerate(zip(originals, tags_per_source, strict=True)):
        source = by_name.get(f"p{index:04d}.png")
        if source is None:
            continue
        ids.append(source.id)
        for slot, tag in enumerate(tags):
            image = Image.fromarray(make_item(rng, tag, original=original).candidate)
            key = workspace.store.put_bytes(png_bytes(image))
            provenance = GenerationProvenance(
                backend="diffusers",
                model_id="evalset",
                recipe="background",
                seed=slot,
                width=image.width,
                height=image.height,
            )
            candidates.append(
                Candidate(
                    id=f"{source.id[:16]}-{slot}",
                    source_id=source.id,
                    slot=slot,
                    image_key=key,
                    provenance=provenance,
                )
            )
    workspace.catalog.add_candidates(candidates)
    return ids
