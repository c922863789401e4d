"""The four screening dimensions and their defect tags: defined once, used everywhere.

The Label Studio config, the dataset features, prompts, rewards and synthetic defects are all
derived from ``TAXONOMY``. Add a tag here and every stage picks it up.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DefectTag(BaseModel):
    """One defect a candidate image can carry."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable snake_case identifier, stored in annotations and datasets.")
    label: str = Field(description="Short human-readable name shown to annotators.")
    description: str = Field(description="What the defect looks like, shown as a hint to annotators.")


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


def _tags(*items: tuple[str, str, str]) -> tuple[DefectTag, ...]:
    return tuple(DefectTag(id=i, label=label, description=d) for i, label, d in items)


TAXONOMY = Taxonomy(
    dimensions=(
        Dimension(
            id="appearance_deformation",
            label="Appearance deformation",
            description="whether the product itself kept its shape, text, logo, colours and parts",
            tags=_tags(
                (
                    "product_warped",
                    "Product warped",
                    "The box, bottle or pack is bent, stretched or distorted.",
                ),
                (
                    "text_garbled",
                    "Text garbled",
                    "Label text is blurred, misspelled or turned into nonsense glyphs.",
                ),
                ("logo_altered", "Logo altered", "The brand mark is changed, smeared or missing."),
                ("color_shifted", "Colour shifted", "Packaging colours differ from the original product."),
                (
                    "parts_missing_or_extra",
                    "Parts missing or extra",
                    "Caps, blisters or panels are missing or duplicated.",
                ),
            ),
        ),
        Dimension(
            id="lighting_shadow",
            label="Lighting and shadow",
            description="whether shadows, highlights and reflections agree with the scene's light",
            tags=_tags(
                (
                    "shadow_missing",
                    "Shadow missing",
                    "The product casts no shadow where the scene requires one.",
                ),
                (
                    "shadow_direction_wrong",
                    "Shadow direction wrong",
                    "The product's shadow falls against the scene's light.",
                ),
                (
                    "lighting_inconsistent",
                    "Lighting inconsistent",
                    "The product is lit differently from its surroundings.",
                ),
                (
                    "reflection_wrong",
                    "Reflection wrong",
                    "Reflections on or of the product are missing or impossible.",
                ),
            ),
        ),
        Dimension(
            id="placement_layout",
            label="Placement and layout",
            description="whether the product is supported, correctly scaled, fully framed and well composed",
            tags=_tags(
                ("floating", "Floating", "The product hovers above its support instead of resting on it."),
                ("scale_wrong", "Scale wrong", "The product is implausibly large or small for the scene."),
                ("product_cropped", "Product cropped", "Part of the product is cut off by the frame."),
                ("occluded", "Occluded", "Scene objects cover important parts of the product."),
                (
                    "composition_unbalanced",
                    "Composition unbalanced",
                    "The product sits awkwardly in the frame.",
                ),
            ),
        ),
        Dimension(
            id="extension_rationality",
            label="Extension rationality",
            description="whether the generated scene makes sense and joins the original image cleanly",
            tags=_tags(
                ("visible_seam", "Visible seam", "A hard edge or colour step shows where generation began."),
                (
                    "repeated_texture",
                    "Repeated texture",
                    "The extended region repeats or mirrors a pattern unnaturally.",
                ),
                ("illogical_scene", "Illogical scene", "The scene contains impossible or unrelated objects."),
                (
                    "perspective_mismatch",
                    "Perspective mismatch",
                    "The scene's perspective disagrees with the product's.",
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
