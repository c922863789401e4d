"""Where a defect is: a region on a candidate, its geometry, and the text a model names it in.

A region is a box ``(x0, y0, x1, y1)`` in fractions of the candidate's width and height (0..1, origin top
left), or a point (a box with ``x0 == x1`` and ``y0 == y1``) where a box makes no sense, such as a missing
shadow. It belongs to one defect tag of its candidate. Annotators draw them on the labeling page; the
synthetic backend records the ones it injected; consensus merges several people's; models name them in
the answer variant with boxes (``<boxes>A (120,300,550,800); C (400,900)</boxes>``, thousandths of the
image, after ``</answer>``), which the prompts, the parser, the rewards and the evaluation share.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.taxonomy import LETTERS, TAXONOMY

POINT_RADIUS = 0.1
"""A point counts as found when a named point or a named box's centre lies within this share of the image
of it (pointing accuracy), and two annotators' points are the same place within it (consensus)."""
HIT_IOU = 0.5
"""A named box finds a true box when their intersection over union reaches this (hit rate at IoU 0.5)."""
SCALE = 1000
"""Coordinates in the answer text are thousandths of the image (as Qwen2-VL names boxes)."""

BOXES_OPEN, BOXES_CLOSE = "<boxes>", "</boxes>"
_ITEM = re.compile(r"([A-D])\s*\(\s*(\d{1,4}(?:\s*,\s*\d{1,4}){1,3})\s*\)", re.IGNORECASE)
_BLOCK = re.compile(r"<boxes>(?P<body>.*?)</boxes>", re.IGNORECASE | re.DOTALL)


class Region(BaseModel):
    """One defect's place on one candidate; after consensus, with who marked it there."""

    model_config = ConfigDict(frozen=True)

    tag: str = Field(description="The defect tag this region shows (one of the candidate's tags).")
    box: tuple[float, float, float, float] = Field(
        description="x0, y0, x1, y1 as fractions of the image; a point has x0 == x1 and y0 == y1."
    )
    agreed: int = Field(default=1, ge=1, description="Annotators whose region was merged into this one.")
    of: int = Field(
        default=1, ge=1, description="Annotators who marked a region for this tag on the candidate."
    )
    annotators: tuple[str, ...] = Field(default=(), description="Who agreed (consensus regions only).")

    @field_validator("tag")
    @classmethod
    def _known(cls, tag: str) -> str:
        if tag not in region_kinds():
            raise ValueError(f"region tag {tag!r} is not in the taxonomy")
        return tag

    @field_validator("box")
    @classmethod
    def _inside(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
            raise ValueError(f"region {box} must lie inside its image (0 <= x0 <= x1 <= 1, same for y)")
        return tuple(round(v, 4) for v in box)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _counts(self) -> Region:
        if self.agreed > self.of:
            raise ValueError(f"{self.agreed} annotators cannot agree on a region only {self.of} marked")
        return self

    @property
    def is_point(self) -> bool:
        return self.box[0] == self.box[2] and self.box[1] == self.box[3]

    @property
    def kind(self) -> str:
        """'point' or 'box', as ``DefectTag.region`` names how a tag is marked."""
        return "point" if self.is_point else "box"

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two boxes (0 when either is a point)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def points_to(named: Region, truth: Region) -> bool:
    """Pointing: the named region's centre lies in the true box (near the true point)."""
    x, y = named.centre
    if truth.is_point:
        tx, ty = truth.centre
        return (x - tx) ** 2 + (y - ty) ** 2 <= POINT_RADIUS**2
    x0, y0, x1, y1 = truth.box
    return x0 <= x <= x1 and y0 <= y <= y1


def closeness(named: Region, truth: Region) -> float:
    """How near a named region comes to a true one: their IoU for two boxes; 1 or 0 by pointing when either is a
    point (a point has no area to overlap)."""
    if truth.is_point or named.is_point:
        return float(points_to(named, truth))
    return iou(named.box, truth.box)


def answered_truths(answer: str, regions: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Region]]]:
    """Each answered letter whose candidate has a true region, with those regions (``regions``: the export's
    column, dicts or ``Region`` objects per candidate, A-D)."""
    letters = answer.split(",")
    for letter, candidate in zip(LETTERS, regions, strict=False):
        if letter in letters and candidate:
            yield letter, [r if isinstance(r, Region) else Region.model_validate(r) for r in candidate]


def hits(named: Region, truth: Region) -> bool:
    """A named region finds a true one: IoU at least ``HIT_IOU`` for boxes, pointing for a true point."""
    if truth.is_point or named.is_point:
        return points_to(named, truth)
    return iou(named.box, truth.box) >= HIT_IOU


def format_boxes(regions: dict[str, list[Region]]) -> str:
    """The answer variant's boxes: ``<boxes>A (120,300,550,800); C (400,900)</boxes>`` (letters in order;
    empty string when no letter has a region)."""
    items = []
    for letter in LETTERS:
        for region in regions.get(letter, []):
            values = region.box[:2] if region.is_point else region.box
            items.append(f"{letter} ({','.join(str(round(v * SCALE)) for v in values)})")
    return f"{BOXES_OPEN}{'; '.join(items)}{BOXES_CLOSE}" if items else ""


def parse_boxes(text: str, tag: str = "appearance_other") -> dict[str, list[Region]]:
    """The regions a completion names per letter (empty when it names none, or names them out of range).

    ``tag`` is given to each parsed region (the answer names places, the question names the dimension).
    """
    block = _BLOCK.search(text)
    found: dict[str, list[Region]] = {}
    if block is None:
        return found
    for letter, numbers in _ITEM.findall(block["body"]):
        values = [int(v) / SCALE for v in re.split(r"\s*,\s*", numbers)]
        if len(values) == 3 or any(v > 1 for v in values):
            continue
        box = (values[0], values[1], values[0], values[1]) if len(values) == 2 else tuple(values)
        if box[0] > box[2] or box[1] > box[3]:
            continue
        found.setdefault(letter.upper(), []).append(Region(tag=tag, box=box))  # type: ignore[arg-type]
    return found


@functools.cache
def region_kinds() -> dict[str, str | None]:
    """How each tag's region is marked: 'box', 'point' or None (the whole frame). Built once."""
    return {tag.id: tag.region for d in TAXONOMY.dimensions for tag in d.tags}
