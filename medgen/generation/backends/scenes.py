"""Procedural scenes for the synthetic backend: a wall and a surface, lit from one side, with props.

Textures are computed once per resolution and reused (random crops and flips per scene), so a
scene costs a handful of vectorised numpy/OpenCV operations. Shadows of props fall away from the
light, which gives the product's own shadow something to agree (or disagree) with.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

WALLS = {
    "plaster": ((236, 230, 220), "plaster", 0.035),
    "sage wall": ((178, 194, 172), "plaster", 0.03),
    "blue wall": ((170, 190, 214), "plaster", 0.03),
    "tiled wall": ((225, 228, 230), "tiles", 0.05),
    "striped wallpaper": ((222, 208, 188), "stripes", 0.04),
    "concrete": ((170, 168, 165), "noise", 0.07),
}
SURFACES = {
    "oak table": ((170, 120, 75), "wood", 0.09),
    "walnut table": ((112, 74, 48), "wood", 0.1),
    "marble counter": ((228, 226, 222), "marble", 0.06),
    "grey countertop": ((140, 140, 138), "noise", 0.05),
    "pharmacy shelf": ((238, 238, 235), "plaster", 0.02),
    "linen cloth": ((214, 200, 178), "fabric", 0.06),
    "bathroom tiles": ((210, 222, 226), "tiles", 0.07),
}
PROPS = ("cup", "plant", "ball", "book", "glass")


@dataclass
class Scene:
    """A rendered background (uint8 RGB) and what the product needs to fit into it."""

    image: np.ndarray
    horizon: int
    light: int  # +1: light from the left (shadows fall right); -1: from the right
    description: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """Scene choices drawn before the product is placed (the product's place depends on them)."""

    horizon: int
    light: int
    wall: str
    surface: str
    sweep: bool


def draw_layout(rng: np.random.Generator, size: int) -> Layout:
    sweep = rng.random() < 0.2
    return Layout(
        horizon=int(size * rng.uniform(0.42, 0.62)),
        light=1 if rng.random() < 0.5 else -1,
        wall=list(WALLS)[int(rng.integers(len(WALLS)))],
        surface=list(SURFACES)[int(rng.integers(len(SURFACES)))],
        sweep=sweep,
    )


def render_scene(
    rng: np.random.Generator,
    size: int,
    layout: Layout,
    keep_clear: tuple[int, int],
    textured: bool = False,
    shadow: np.ndarray | None = None,
) -> Scene:
    """Render the background; props stay out of the columns ``keep_clear`` (the product's span).

    ``textured`` forces a strongly patterned wall and surface (so repeats in the scene are visible);
    ``shadow`` is an extra shadow opacity map at half resolution (the product's), applied with the
    props' shadows. All shading is done on one single-channel light map, coloured once at the end
    (3-channel float arithmetic is several times slower). No sensor grain: it would double the
    PNG encoding time downstream.
    """
    light, wall_rgb, surface_rgb = _light_map(rng, size, layout, textured)
    props = _prop_places(rng, size, layout, keep_clear)
    _shade(light, props, layout, size, shadow)
    light *= texture_bank(size // 2)["vignette"]
    light = cv2.resize(light, (size, size), interpolation=cv2.INTER_LINEAR)
    h = layout.horizon
    image = np.empty((size, size, 3), np.uint8)  # coloured per channel: 3-channel float broadcasts are slow
    image[:h] = cv2.merge([cv2.convertScaleAbs(light[:h], alpha=float(c)) for c in wall_rgb])
    image[h:] = cv2.merge([cv2.convertScaleAbs(light[h:], alpha=float(c)) for c in surface_rgb])
    for kind, x0, base, width, colour, _ in props:
        _prop(image, kind, x0, base, width, colour, rng)
    names = [p[0] for p in props]
    params = {
        "wall": layout.wall,
        "surface": layout.surface,
        "sweep": layout.sweep,
        "horizon": h,
        "light": "left" if layout.light > 0 else "right",
        "props": names,
        "textured": textured,
    }
    return Scene(
        image=image, horizon=h, light=layout.light, description=_description(layout, names), params=params
    )


def _light_map(
    rng: np.random.Generator, size: int, layout: Layout, textured: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The wall's and the surface's shading at half resolution (textures, light falloff), and their colours."""
    half = size // 2
    bank = texture_bank(half)
    hh = layout.horizon // 2
    wall_colour, wall_texture, wall_amp = WALLS[layout.wall]
    surface_colour, surface_texture, surface_amp = SURFACES[layout.surface]
    if textured:
        wall_texture, wall_amp = "noise", 0.12
        surface_texture, surface_amp = "noise", 0.14
    wall_rgb = _jitter(rng, wall_colour)
    surface_rgb = wall_rgb * rng.uniform(0.85, 0.95) if layout.sweep else _jitter(rng, surface_colour)
    xs = np.linspace(-1.0, 1.0, half, dtype=np.float32)
    side_light = 1.0 + rng.uniform(0.06, 0.12) * layout.light * -xs  # brighter towards the light
    light = np.empty((half, half), np.float32)
    wall = light[:hh]
    np.multiply(_crop(rng, bank[wall_texture], hh, half), (0.3 if layout.sweep else 1.0) * wall_amp, out=wall)
    wall += 1.0
    wall *= side_light[None, :] * np.linspace(0.96, 1.02, hh, dtype=np.float32)[:, None]
    floor = light[hh:]
    np.multiply(
        _crop(rng, bank["floor-" + surface_texture], half - hh, half, from_top=True), surface_amp, out=floor
    )
    floor += 1.0
    floor *= (1.0 + 0.6 * (side_light - 1.0))[None, :]
    if not layout.sweep:  # the wall meets the surface: a soft occlusion band and an edge line
        band = min(hh, max(2, size // 80))
        light[hh - band : hh] *= np.linspace(1.0, 0.82, band, dtype=np.float32)[:, None]
        light[hh] *= 0.9
    return light, wall_rgb, surface_rgb


def _shade(
    light: np.ndarray, props: list[tuple], layout: Layout, size: int, shadow: np.ndarray | None
) -> None:
    """Darken the half-resolution light map where the props, and the product (``shadow``), cast shadows."""
    shade = np.zeros(light.shape, np.float32)
    for _, x0, base, width, _, height in props:
        cast = int(layout.light * height * 0.45)
        centre = ((x0 + width // 2 + cast // 2) // 2, (base - max(2, height // 10)) // 2)
        axes = ((width // 2 + abs(cast) // 2) // 2, max(2, height // 8) // 2)
        cv2.ellipse(shade, centre, axes, 0, 0, 360, 0.4, -1)
    if props:
        shade = cv2.GaussianBlur(shade, (0, 0), size / 240)
    if shadow is not None:
        shade = 1.0 - (1.0 - shade) * (1.0 - shadow)
    if props or shadow is not None:
        light *= 1.0 - shade


def _description(layout: Layout, props: list[str]) -> str:
    description = (
        f"studio sweep in {layout.wall} tones"
        if layout.sweep
        else f"{layout.surface} against a {layout.wall}"
    )
    if props:
        description += ", with " + ", ".join(props)
    return description + f", light from the {'left' if layout.light > 0 else 'right'}"


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int]) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) * rng.uniform(0.9, 1.06, 3), 0, 255).astype(np.float32)


def _crop(
    rng: np.random.Generator, texture: np.ndarray, height: int, width: int, from_top: bool = False
) -> np.ndarray:
    """A random window (random flip) of a texture; ``from_top`` keeps the first row (a floor's horizon)."""
    rows, cols = texture.shape
    oy = 0 if from_top else int(rng.integers(0, rows - height + 1))
    ox = int(rng.integers(0, cols - width + 1))
    view = texture[oy : oy + height, ox : ox + width]
    return view[:, ::-1] if rng.random() < 0.5 else view


def _prop_places(
    rng: np.random.Generator, size: int, layout: Layout, keep_clear: tuple[int, int]
) -> list[tuple[str, int, int, int, tuple[float, ...], int]]:
    """Up to two props on the surface near the wall, outside ``keep_clear``: (kind, x0, base, width, colour, height)."""
    placed: list[tuple[str, int, int, int, tuple[float, ...], int]] = []
    margin = size // 40
    free = [(0, keep_clear[0] - margin), (keep_clear[1] + margin, size)]
    for _ in range(int(rng.integers(0, 3))):
        left, right = free[int(rng.integers(len(free)))]
        width = int(size * rng.uniform(0.08, 0.14))
        if right - left < width + 2 * margin:
            continue
        x0 = int(rng.integers(left + margin, right - width - margin + 1))
        base = int(layout.horizon + (size - layout.horizon) * rng.uniform(0.06, 0.25))
        kind = PROPS[int(rng.integers(len(PROPS)))]
        colour = tuple(float(c) for c in rng.integers(40, 230, 3))
        placed.append((kind, x0, base, width, colour, _PROP_HEIGHT[kind](width)))
        free = [(left, x0 - margin), (x0 + width + margin, right)] + [f for f in free if f != (left, right)]
    return placed


_PROP_HEIGHT = {
    "cup": lambda w: int(w * 0.9),
    "plant": lambda w: int(w * 0.8) + w,
    "ball": lambda w: 2 * (w // 2),
    "book": lambda w: max(4, w // 4),
    "glass": lambda w: int(w * 1.3),
}


def _prop(
    image: np.ndarray, kind: str, x0: int, base: int, width: int, colour: tuple[float, ...], rng
) -> int:
    """Draw one simple prop standing on ``base``; returns its height."""
    dark = tuple(c * 0.7 for c in colour)
    if kind == "cup":
        height = int(width * 0.9)
        cv2.rectangle(image, (x0, base - height), (x0 + width, base), colour, -1)
        cv2.ellipse(
            image, (x0 + width // 2, base - height), (width // 2, max(2, width // 8)), 0, 0, 360, dark, -1
        )
        cv2.ellipse(
            image,
            (x0 + width, base - height // 2),
            (width // 5, height // 4),
            0,
            -90,
            90,
            colour,
            max(2, width // 12),
        )
    elif kind == "plant":
        pot_h = int(width * 0.8)
        pot = np.int32(
            [
                [x0, base - pot_h],
                [x0 + width, base - pot_h],
                [x0 + width * 0.85, base],
                [x0 + width * 0.15, base],
            ]
        )
        cv2.fillPoly(image, [pot], (180.0, 95.0, 60.0))
        green = (float(rng.integers(40, 80)), float(rng.integers(110, 160)), float(rng.integers(40, 80)))
        for i in range(5):
            cx = x0 + width // 2 + int((i - 2) * width * 0.18)
            cv2.ellipse(
                image,
                (cx, base - pot_h - width // 3),
                (width // 5, width // 2),
                (i - 2) * 18,
                0,
                360,
                green,
                -1,
            )
        height = pot_h + width
    elif kind == "ball":
        r = width // 2
        cv2.circle(image, (x0 + r, base - r), r, dark, -1)
        cv2.circle(image, (x0 + r - r // 5, base - r - r // 5), int(r * 0.75), colour, -1)
        height = 2 * r
    elif kind == "book":
        height = max(4, width // 4)
        cv2.rectangle(image, (x0 - width // 3, base - height), (x0 + width + width // 3, base), colour, -1)
        cv2.rectangle(
            image,
            (x0 - width // 3, base - height // 3),
            (x0 + width + width // 3, base),
            (235.0, 232.0, 220.0),
            -1,
        )
    else:  # a glass of water: pale, with a highlight
        height = int(width * 1.3)
        cv2.rectangle(image, (x0, base - height), (x0 + width, base), (205.0, 220.0, 228.0), -1)
        cv2.line(
            image,
            (x0 + width // 4, base - height + 4),
            (x0 + width // 4, base - 4),
            (250.0, 250.0, 250.0),
            max(1, width // 10),
        )
    return height


@functools.lru_cache(maxsize=2)
def texture_bank(size: int) -> dict[str, np.ndarray]:
    """Zero-mean, unit-std textures of side ``2 * size`` (fixed seed), their floor views, and a vignette."""
    rng = np.random.default_rng(20240601)
    n = 2 * size
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)

    def noise(octaves: tuple[int, ...], falloff: float) -> np.ndarray:
        total = np.zeros((n, n), np.float32)
        amp = 1.0
        for k in octaves:
            small = rng.standard_normal((k, k)).astype(np.float32)
            total += amp * cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)
            amp *= falloff
        return total

    def unit(a: np.ndarray) -> np.ndarray:
        return ((a - a.mean()) / (a.std() + 1e-6)).astype(np.float32)

    turbulence = unit(noise((4, 8, 16, 32), 0.55))
    fine = unit(noise((128, 256, n // 2), 0.8))
    plank = n // 8
    plank_shift = np.repeat(rng.uniform(0, 100, n // plank + 1).astype(np.float32), plank)[:n, None]
    grain = np.sin((ys + turbulence * 6 + plank_shift) * (2 * np.pi / 11)) + 0.4 * fine
    grain -= 3.0 * ((ys % plank) < max(2, n // 400))
    tile = n // 10
    tile_tone = rng.normal(0, 0.4, (n // tile + 1, n // tile + 1)).astype(np.float32)
    tiles = tile_tone[(ys // tile).astype(int), (xs // tile).astype(int)] + 0.2 * fine
    tiles -= 3.0 * (((xs % tile) < max(2, n // 300)) | ((ys % tile) < max(2, n // 300)))
    marble = -(np.abs(np.sin((xs + ys * 0.6) * (2 * np.pi / (n / 5)) + turbulence * 3.5)) ** 0.5)
    weave = np.sin(xs * (2 * np.pi / 14)) * np.sin(ys * (2 * np.pi / 14)) + 0.5 * fine
    stripes = np.sign(np.sin(xs * (2 * np.pi / (n / 24)))) + 0.2 * fine
    r = np.hypot(*np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]).astype(np.float32)
    textures = {
        "plaster": unit(turbulence * 0.5 + fine * 0.5),
        "noise": unit(turbulence + 0.6 * fine),
        "wood": unit(grain),
        "tiles": unit(tiles),
        "marble": unit(marble + 0.2 * turbulence),
        "fabric": unit(weave),
        "stripes": unit(stripes),
    }
    # Surfaces seen in perspective (compressed towards the horizon), wide enough for random crops.
    floor_h = int(size * 0.6)
    src = np.float32([[0, 0], [n / 2, 0], [n / 2, n / 4], [0, n / 4]])
    dst = np.float32([[-0.8 * size, 0], [n + 0.8 * size, 0], [n, floor_h], [0, floor_h]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    for name in list(textures):
        textures["floor-" + name] = cv2.warpPerspective(
            textures[name], matrix, (n, floor_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    textures["vignette"] = (1.0 - 0.12 * np.clip(r - 0.5, 0, None) ** 2).astype(np.float32)
    return textures
