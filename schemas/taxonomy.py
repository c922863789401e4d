"""The four screening dimensions and their defect tags: defined once, used everywhere.

The Label Studio config, the dataset features, prompts, rewards and synthetic defects are all
derived from ``TAXONOMY``. Add a tag here and every stage picks it up.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DefectTag(BaseModel):
    """One defect a candidate image can carry."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable snake_case identifier, stored in annotations and datasets.")
    label: str = Field(description="Short human-readable name shown to annotators.")
    description: str = Field(description="What the defect looks like, shown as a hint to annotators.")
    key: str | None = Field(
        default=None,
        description="Keyboard key of the tag on the labeling page (the candidate's modifier picks the candidate).",
    )
    needs_note: bool = Field(default=False, description="The annotator must describe the defect in words.")
    region: Literal["box", "point"] | None = Field(
        default="box",
        description="How the labeling page marks where the defect is: a box, a point (where a box makes no sense, "
        "such as a missing shadow), or nothing (a defect of the whole frame).",
    )


class Dimension(BaseModel):
    """One aspect of aesthetic reasoning along which candidates are screened."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable snake_case identifier.")
    label: str = Field(description="Short human-readable name.")
    description: str = Field(description="Phrase used inside the benchmark question ('Considering ...').")
    tags: tuple[DefectTag, ...] = Field(description="The defect tags of this dimension.")

    def tag_ids(self) -> list[str]:
        return [tag.id for tag in self.tags]


class Taxonomy(BaseModel):
    """The ordered set of dimensions."""

    model_config = ConfigDict(frozen=True)

    dimensions: tuple[Dimension, ...]

    @model_validator(mode="after")
    def _unique(self) -> Taxonomy:
        ids = [tag.id for d in self.dimensions for tag in d.tags]
        keys = [tag.key for d in self.dimensions for tag in d.tags if tag.key]
        if len(set(ids)) != len(ids) or len(set(keys)) != len(keys):
            raise ValueError("defect tag ids and keys must be unique across the taxonomy")
        return self

    def dimension_ids(self) -> list[str]:
        return [dimension.id for dimension in self.dimensions]

    def dimension(self, dimension_id: str) -> Dimension:
        for dimension in self.dimensions:
            if dimension.id == dimension_id:
                return dimension
        known = ", ".join(self.dimension_ids())
        raise KeyError(f"unknown dimension {dimension_id!r}; known dimensions: {known}")

    def all_tags(self) -> dict[str, str]:
        """Map every defect tag id to the id of its dimension."""
        return {tag.id: dimension.id for dimension in self.dimensions for tag in dimension.tags}

    def dimension_of(self, tag_id: str) -> str:
        tags = self.all_tags()
        if tag_id not in tags:
            raise KeyError(f"unknown defect tag {tag_id!r}; it is not in the taxonomy")
        return tags[tag_id]


REGION_KINDS: dict[str, Literal["point"] | None] = {"shadow_missing": "point", "composition_unbalanced": None}
"""Tags marked otherwise than with a box: a missing shadow has no extent (a point where it should be), an
unbalanced composition is the whole frame (no region)."""


def _tags(other: tuple[str, str], *items: tuple[str, str, str, str]) -> tuple[DefectTag, ...]:
    """The dimension's tags with their keys, then its ``other`` tag (id, key), described in a note."""
    return (
        *(
            DefectTag(id=i, label=label, description=d, key=key, region=REGION_KINDS.get(i, "box"))
            for i, label, d, key in items
        ),
        DefectTag(
            id=other[0],
            key=other[1],
            label="Other",
            description="A defect of this dimension that no other tag names, described in the note.",
            needs_note=True,
        ),
    )


TAXONOMY = Taxonomy(
    dimensions=(
        Dimension(
            id="appearance_deformation",
            label="Appearance deformation",
            description="whether the product itself kept its shape, text, logo, colours and parts",
            tags=_tags(
                ("appearance_other", "]"),
                (
                    "product_warped",
                    "Product warped",
                    "The box, bottle or pack is bent, stretched or distorted.",
                    "w",
                ),
                (
                    "text_garbled",
                    "Text garbled",
                    "Label text is blurred, misspelled or turned into nonsense glyphs.",
                    "g",
                ),
                ("logo_altered", "Logo altered", "The brand mark is changed, smeared or missing.", "o"),
                (
                    "color_shifted",
                    "Colour shifted",
                    "Packaging colours differ from the original product.",
                    "c",
                ),
                (
                    "parts_missing_or_extra",
                    "Parts missing or extra",
                    "Caps, blisters or panels are missing or duplicated.",
                    "p",
                ),
            ),
        ),
        Dimension(
            id="lighting_shadow",
            label="Lighting and shadow",
            description="whether shadows, highlights and reflections agree with the scene's light",
            tags=_tags(
                ("lighting_other", "-"),
                (
                    "shadow_missing",
                    "Shadow missing",
                    "The product casts no shadow where the scene requires one.",
                    "s",
                ),
                (
                    "shadow_direction_wrong",
                    "Shadow direction wrong",
                    "The product's shadow falls against the scene's light.",
                    "j",
                ),
                (
                    "lighting_inconsistent",
                    "Lighting inconsistent",
                    "The product is lit differently from its surroundings.",
                    "k",
                ),
                (
                    "reflection_wrong",
                    "Reflection wrong",
                    "Reflections on or of the product are missing or impossible.",
                    "y",
                ),
            ),
        ),
        Dimension(
            id="placement_layout",
            label="Placement and layout",
            description="whether the product is supported, correctly scaled, fully framed and well composed",
            tags=_tags(
                ("placement_other", "="),
                (
                    "floating",
                    "Floating",
                    "The product hovers above its support instead of resting on it.",
                    "n",
                ),
                (
                    "scale_wrong",
                    "Scale wrong",
                    "The product is implausibly large or small for the scene.",
                    "z",
                ),
                ("product_cropped", "Product cropped", "Part of the product is cut off by the frame.", "x"),
                ("occluded", "Occluded", "Scene objects cover important parts of the product.", "q"),
                (
                    "composition_unbalanced",
                    "Composition unbalanced",
                    "The product sits awkwardly in the frame.",
                    "[",
                ),
            ),
        ),
        Dimension(
            id="extension_rationality",
            label="Extension rationality",
            description="whether the generated scene makes sense and joins the original image cleanly",
            tags=_tags(
                ("extension_other", "\\"),
                (
                    "visible_seam",
                    "Visible seam",
                    "A hard edge or colour step shows where generation began.",
                    ";",
                ),
                (
                    "repeated_texture",
                    "Repeated texture",
                    "The extended region repeats or mirrors a pattern unnaturally.",
                    "'",
                ),
                (
                    "illogical_scene",
                    "Illogical scene",
                    "The scene contains impossible or unrelated objects.",
                    "/",
                ),
                (
                    "perspective_mismatch",
                    "Perspective mismatch",
                    "The scene's perspective disagrees with the product's.",
                    ",",
                ),
            ),
        ),
    )
)

OVERALL = "overall"
"""Pseudo-dimension of the question 'which candidates are acceptable to publish?'."""

OVERALL_DESCRIPTION = "whether the image is fit to publish as a product photo"

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
"""Candidate letters, in order. ``images`` = [source, A, B, C, D]."""

NUM_CANDIDATES = len(LETTERS)

QUESTION_DIMENSIONS: tuple[str, ...] = (*TAXONOMY.dimension_ids(), OVERALL)
"""Every value of the dataset's ``dimension`` ClassLabel, in ClassLabel order."""


@functools.cache
def tag_dimensions() -> dict[str, str]:
    """``TAXONOMY.all_tags()`` built once: every defect tag id to its dimension's id."""
    return TAXONOMY.all_tags()
