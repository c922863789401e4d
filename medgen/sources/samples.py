"""Bundled sample sources: procedural studio photos of medicine products (boxes, bottles, blisters, tubes).

They make the whole pipeline runnable without real photos (demo, tests, benchmarks). Every sample
is drawn from the seed alone, so the same ``(n, seed)`` gives the same files. About a third are
RGBA cut-outs (transparent background), which exercises the mask-from-alpha path of
``medgen sources add``; the rest sit on plain or studio-gradient backdrops, where the OpenCV mask is
used. Samples that the perceptual-hash dedup of ``medgen.sources.ingest`` would call near-duplicates of
an earlier sample are redrawn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from medgen.errors import MedgenError
from medgen.sources.ingest import PHASH_THRESHOLD, normalise

SUPERSAMPLE = 2
"""Products are drawn at twice the size and downsampled: PIL's polygons have no anti-aliasing."""
MIN_PHASH_DISTANCE = 3 * PHASH_THRESHOLD
"""Samples keep a wide margin over the dedup threshold, so re-encoding never merges two of them."""
CANVAS_SIZES = ((512, 512), (640, 512), (512, 640), (576, 576), (640, 640))

_SYLLABLES = (
    "cal",
    "mo",
    "ra",
    "xin",
    "dol",
    "pra",
    "zen",
    "vi",
    "ta",
    "lor",
    "fen",
    "ibu",
    "pro",
    "ce",
    "tri",
    "nol",
    "sta",
    "mex",
    "ar",
    "lu",
)
_SUFFIXES = ("ol", "in", "ex", "an", "il", "ax", "um", "ine", "ium", "a")
_DOSES = ("50 mg", "100 mg", "200 mg", "250 mg", "400 mg", "500 mg", "1 g", "5 mg/ml", "10 mg", "20 mg", "2%")
_FORMS = (
    "tablets",
    "film-coated tablets",
    "capsules",
    "hard capsules",
    "oral solution",
    "cream",
    "effervescent tablets",
    "syrup",
)
_PACK_COLOURS = (
    (196, 30, 45),
    (20, 90, 170),
    (0, 140, 110),
    (240, 160, 0),
    (120, 50, 150),
    (230, 95, 30),
    (30, 160, 200),
    (90, 150, 40),
    (200, 40, 120),
    (40, 40, 60),
)


def write_samples(
    directory: str | Path, n: int, seed: int = 0, on_progress: Callable[[Path], None] | None = None
) -> list[Path]:
    """Write ``n`` distinct sample product photos into ``directory``; return their paths in order."""
    if n < 1:
        raise MedgenError(f"number of samples must be at least 1, got {n}")
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MedgenError(f"cannot create sample folder {directory}: {error.strerror or error}") from None
    rng = np.random.default_rng(seed)
    hashes: list[imagehash.ImageHash] = []
    paths: list[Path] = []
    attempts = 0
    while len(paths) < n:
        attempts += 1
        if attempts > 20 * n:  # cannot happen with the drawing variety below; guards an endless loop
            raise MedgenError(f"could only draw {len(paths)} distinct samples out of {n}")
        index = len(paths)
        image, _ = draw_sample(rng, cutout=index % 3 == 2)
        phash = imagehash.phash(normalise(image).rgb)
        if any(phash - other < MIN_PHASH_DISTANCE for other in hashes):
            continue
        hashes.append(phash)
        jpeg = image.mode == "RGB" and index % 4 == 1
        path = directory / f"sample_{index:03d}.{'jpg' if jpeg else 'png'}"
        if jpeg:
            image.save(path, quality=93)
        else:
            image.save(path, compress_level=1)
        paths.append(path)
        if on_progress:
            on_progress(path)
    return paths


def draw_sample(rng: np.random.Generator, cutout: bool = False) -> tuple[Image.Image, Image.Image]:
    """One product photo (RGBA cut-out when ``cutout``, else RGB) and its true product mask (L)."""
    width, height = CANVAS_SIZES[int(rng.integers(len(CANVAS_SIZES)))]
    kind = ("box", "bottle", "blister", "tube")[int(rng.integers(4))]
    dark = rng.random() < 0.35  # white packaging only on darker backdrops, so the OpenCV mask can find it
    layer, shadow_box = _draw_product(rng, kind, width, height, dark)
    mask = layer.getchannel("A").point(lambda a: 255 if a >= 128 else 0)
    if cutout:
        return layer, mask
    background = _backdrop(rng, width, height, dark)
    _contact_shadow(background, shadow_box)
    background.paste(layer, (0, 0), layer)
    return background.convert("RGB"), mask


def _backdrop(rng: np.random.Generator, width: int, height: int, dark: bool) -> Image.Image:
    """Plain, vertical studio sweep or radial studio light; light enough for the OpenCV mask."""
    base = rng.uniform(*((140, 190) if dark else (215, 250)), 3) * (1 - rng.uniform(0, 0.08, 3))
    style = int(rng.integers(3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if style == 0:
        light = np.ones((height, width), np.float32)
    elif style == 1:
        light = 1.0 - rng.uniform(0.04, 0.12) * (ys / height)
    else:
        cx, cy = width * rng.uniform(0.3, 0.7), height * rng.uniform(0.2, 0.5)
        distance = np.hypot(xs - cx, ys - cy) / max(width, height)
        light = 1.0 - rng.uniform(0.08, 0.16) * distance
    pixels = light[..., None] * base[None, None, :] + rng.normal(0, 1.2, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGBA")


def _contact_shadow(background: Image.Image, box: tuple[int, int, int, int]) -> None:
    """A faint soft shadow under the product, too faint to enter the product mask."""
    shadow = Image.new("L", background.size, 0)
    ImageDraw.Draw(shadow).ellipse(box, fill=22)
    shadow = shadow.filter(ImageFilter.GaussianBlur(6))
    dark = Image.new("RGBA", background.size, (40, 40, 40, 255))
    background.paste(dark, (0, 0), shadow)


def _draw_product(
    rng: np.random.Generator, kind: str, width: int, height: int, dark: bool
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The product on a transparent layer, plus the box of its contact shadow."""
    s = SUPERSAMPLE
    big = Image.new("RGBA", (width * s, height * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    colour = _PACK_COLOURS[int(rng.integers(len(_PACK_COLOURS)))]
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)
    pale = (245, 245, 240) if dark else tuple((c + 255) // 2 for c in colour)
    name = _brand_name(rng)
    size = min(width, height)
    cx = width * rng.uniform(0.38, 0.62)
    bottom = height * rng.uniform(0.8, 0.9)
    if kind == "box":
        w, h = size * rng.uniform(0.3, 0.5), size * rng.uniform(0.4, 0.62)
        w, h = (h * 1.1, w * 0.9) if rng.random() < 0.35 else (w, h)  # some boxes lie flat
        _box(draw, rng, s, cx - w / 2, bottom - h, w, h, colour, pale, name)
    elif kind == "bottle":
        w, h = size * rng.uniform(0.22, 0.34), size * rng.uniform(0.5, 0.68)
        _bottle(big, draw, rng, s, cx - w / 2, bottom - h, w, h, colour, pale, name)
    elif kind == "blister":
        w, h = size * rng.uniform(0.4, 0.58), size * rng.uniform(0.3, 0.45)
        _blister(draw, rng, s, cx - w / 2, bottom - h, w, h, colour, pale, name)
    else:
        w, h = size * rng.uniform(0.18, 0.26), size * rng.uniform(0.55, 0.7)
        _tube(draw, rng, s, cx - w / 2, bottom - h, w, h, colour, pale, name)
    layer = big.resize((width, height), Image.BOX)
    shadow_box = (
        int(cx - w * 0.55),
        int(bottom - size * 0.02),
        int(cx + w * 0.55),
        int(bottom + size * 0.03),
    )
    return layer, shadow_box


def _brand_name(rng: np.random.Generator) -> str:
    parts = [_SYLLABLES[int(i)] for i in rng.integers(len(_SYLLABLES), size=int(rng.integers(2, 4)))]
    return ("".join(parts) + _SUFFIXES[int(rng.integers(len(_SUFFIXES)))]).capitalize()


def _font(px: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, int(px)))


def _shade(colour: tuple[int, ...], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour[:3])  # type: ignore[return-value]


def _label_text(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    s: int,
    x: float,
    y: float,
    w: float,
    name: str,
    ink: tuple[int, int, int],
) -> float:
    """Brand name, dose and form, left-aligned from (x, y) within width w; returns the y below."""
    big = w / max(len(name), 4) * 1.6
    draw.text((x * s, y * s), name, fill=ink, font=_font(big * s))
    y += big * 1.15
    dose = _DOSES[int(rng.integers(len(_DOSES)))]
    draw.text((x * s, y * s), dose, fill=ink, font=_font(big * 0.7 * s))
    y += big * 0.85
    form = _FORMS[int(rng.integers(len(_FORMS)))]
    small = min(big * 0.45, w / max(len(form), 1) * 1.7)
    draw.text((x * s, y * s), form, fill=ink, font=_font(small * s))
    return y + small * 1.3


def _box(draw, rng, s, x, y, w, h, colour, pale, name) -> None:
    depth = w * rng.uniform(0.12, 0.25)
    top = [(x, y), (x + depth, y - depth * 0.6), (x + w + depth, y - depth * 0.6), (x + w, y)]
    side = [
        (x + w, y),
        (x + w + depth, y - depth * 0.6),
        (x + w + depth, y + h - depth * 0.6),
        (x + w, y + h),
    ]
    white = rng.random() < 0.5
    face = pale if white else colour
    draw.polygon([(px * s, py * s) for px, py in top], fill=_shade(face, 1.08 if not white else 0.97))
    draw.polygon([(px * s, py * s) for px, py in side], fill=_shade(face, 0.6))
    draw.rectangle([x * s, y * s, (x + w) * s, (y + h) * s], fill=face)
    band_y = y + h * rng.uniform(0.55, 0.72)
    accent = colour if white else (250, 250, 250)
    draw.rectangle([x * s, band_y * s, (x + w) * s, (band_y + h * 0.12) * s], fill=accent)
    ink = (30, 30, 40) if white else (255, 255, 255)
    _label_text(draw, rng, s, x + w * 0.08, y + h * 0.1, w * 0.84, name, ink)
    r = min(w, h) * 0.07
    lx, ly = x + w * 0.82, y + h * 0.88
    if rng.random() < 0.5:  # a cross logo
        draw.rectangle(
            [(lx - r) * s, (ly - r / 3) * s, (lx + r) * s, (ly + r / 3) * s], fill=accent if white else ink
        )
        draw.rectangle(
            [(lx - r / 3) * s, (ly - r) * s, (lx + r / 3) * s, (ly + r) * s], fill=accent if white else ink
        )
    else:
        draw.ellipse([(lx - r) * s, (ly - r) * s, (lx + r) * s, (ly + r) * s], fill=accent if white else ink)


def _bottle(big, draw, rng, s, x, y, w, h, colour, pale, name) -> None:
    glass = rng.random() < 0.5
    body = (150, 85, 30) if glass else pale
    cap = colour if rng.random() < 0.7 else (250, 250, 250)
    neck_w, cap_h, shoulder = w * 0.42, h * 0.13, h * 0.12
    cap_box = [(x + (w - neck_w * 1.1) / 2) * s, y * s, (x + (w + neck_w * 1.1) / 2) * s, (y + cap_h) * s]
    draw.rounded_rectangle(cap_box, radius=int(w * 0.05 * s), fill=cap)
    for i in range(1, 7):  # cap ridges
        rx = cap_box[0] + (cap_box[2] - cap_box[0]) * i / 7
        draw.line([rx, cap_box[1] + 2 * s, rx, cap_box[3] - 2 * s], fill=_shade(cap, 0.8), width=s)
    neck_top = y + cap_h
    draw.rectangle(
        [
            (x + (w - neck_w) / 2) * s,
            neck_top * s,
            (x + (w + neck_w) / 2) * s,
            (neck_top + shoulder * 0.6) * s,
        ],
        fill=body,
    )
    body_top = neck_top + shoulder * 0.4
    draw.rounded_rectangle(
        [x * s, body_top * s, (x + w) * s, (y + h) * s], radius=int(w * 0.22 * s), fill=body
    )
    _cylinder_light(big, x * s, body_top * s, w * s, (y + h - body_top) * s)
    label_top = body_top + (y + h - body_top) * rng.uniform(0.25, 0.35)
    label_h = (y + h - body_top) * rng.uniform(0.45, 0.55)
    label_bg = (250, 250, 248) if glass else colour
    draw.rectangle([x * s, label_top * s, (x + w) * s, (label_top + label_h) * s], fill=label_bg)
    ink = (20, 20, 30) if glass else (255, 255, 255)
    _label_text(draw, rng, s, x + w * 0.07, label_top + label_h * 0.1, w * 0.86, name, ink)


def _cylinder_light(big: Image.Image, x: float, y: float, w: float, h: float) -> None:
    """Shade a vertical cylinder: darker edges, a highlight stripe left of centre."""
    x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
    region = np.asarray(big.crop((x0, y0, x1, y1))).astype(np.float32)
    u = np.linspace(-1, 1, x1 - x0, dtype=np.float32)
    light = 0.72 + 0.28 * np.sqrt(np.clip(1 - u**2, 0, 1)) + 0.25 * np.exp(-(((u + 0.35) / 0.12) ** 2))
    region[..., :3] = np.clip(region[..., :3] * light[None, :, None], 0, 255)
    big.paste(Image.fromarray(region.astype(np.uint8), "RGBA"), (x0, y0))


def _blister(draw, rng, s, x, y, w, h, colour, pale, name) -> None:
    foil = tuple(int(v) for v in rng.integers(*((205, 225) if pale == (245, 245, 240) else (140, 170)), 3))
    draw.rounded_rectangle(
        [x * s, y * s, (x + w) * s, (y + h) * s], radius=int(min(w, h) * 0.06 * s), fill=foil
    )
    strip_h = h * 0.18
    draw.rectangle([x * s, (y + h - strip_h) * s, (x + w) * s, (y + h) * s], fill=colour)
    draw.text(
        ((x + w * 0.05) * s, (y + h - strip_h * 0.9) * s),
        name,
        fill=(255, 255, 255),
        font=_font(strip_h * 0.7 * s),
    )
    cols, rows = int(rng.integers(3, 6)), int(rng.integers(2, 4))
    pill = tuple(int(v) for v in rng.integers(170, 256, 3))
    oval = rng.random() < 0.5
    cell_w, cell_h = w * 0.9 / cols, (h - strip_h) * 0.9 / rows
    for r in range(rows):
        for c in range(cols):
            px = x + w * 0.05 + c * cell_w + cell_w * 0.15
            py = y + h * 0.04 + r * cell_h + cell_h * 0.15
            pw, ph = cell_w * 0.7, cell_h * 0.7
            if not oval:
                pw = ph = min(pw, ph)
            draw.ellipse([px * s, py * s, (px + pw) * s, (py + ph) * s], fill=_shade(foil, 0.85))
            draw.ellipse(
                [(px + pw * 0.1) * s, (py + ph * 0.1) * s, (px + pw * 0.9) * s, (py + ph * 0.9) * s],
                fill=pill,
            )
            draw.ellipse(
                [(px + pw * 0.25) * s, (py + ph * 0.2) * s, (px + pw * 0.45) * s, (py + ph * 0.4) * s],
                fill=(255, 255, 255),
            )


def _tube(draw, rng, s, x, y, w, h, colour, pale, name) -> None:
    cap_h = h * 0.14
    draw.rounded_rectangle(
        [(x + w * 0.25) * s, (y + h - cap_h) * s, (x + w * 0.75) * s, (y + h) * s],
        radius=int(w * 0.08 * s),
        fill=_shade(colour, 0.6),
    )
    body = [
        (x - w * 0.08, y),
        (x + w * 1.08, y),
        (x + w * 0.85, y + h - cap_h),
        (x + w * 0.15, y + h - cap_h),
    ]
    draw.polygon([(px * s, py * s) for px, py in body], fill=pale)
    draw.rectangle(
        [(x - w * 0.08) * s, y * s, (x + w * 1.08) * s, (y + h * 0.05) * s],
        fill=_shade(pale, 0.85),
    )
    draw.polygon(
        [
            (px * s, py * s)
            for px, py in [
                (x - w * 0.02, y + h * 0.15),
                (x + w * 1.02, y + h * 0.15),
                (x + w * 0.95, y + h * 0.35),
                (x + w * 0.05, y + h * 0.35),
            ]
        ],
        fill=colour,
    )
    _label_text(draw, rng, s, x + w * 0.1, y + h * 0.4, w * 0.8, name, (30, 30, 40))
