"""The ``synthetic`` backend: composite the product onto procedural scenes and inject known defects.

CPU only, no model. Each candidate's injected defect tags are ground truth for gold tasks, tests
and the demo. Orchestration (what to make, storage, sharding, resume) lives in ``medgen.generate``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from medgen.backend import GeneratedImage, GenerationRequest

DEFECT_KINDS: tuple[str, ...] = (
    "product_warped",
    "text_garbled",
    "color_shifted",
    "shadow_missing",
    "shadow_direction_wrong",
    "lighting_inconsistent",
    "floating",
    "scale_wrong",
    "product_cropped",
    "visible_seam",
    "repeated_texture",
)
"""Taxonomy tags this backend knows how to inject."""


class SyntheticOptions(BaseModel):
    """Settings of the synthetic backend."""

    model_config = ConfigDict(extra="forbid")

    resolution: int = Field(
        default=512, ge=64, le=4096, description="Width and height of each candidate, pixels."
    )
    defective_per_source: tuple[int, int] = Field(
        default=(1, 3), description="Min and max number of defective candidates among a source's four."
    )
    max_defects_per_candidate: int = Field(
        default=2, ge=1, le=4, description="Most defects injected into one candidate."
    )
    strength: tuple[float, float] = Field(
        default=(0.6, 1.0), description="Range of defect strength in (0, 1]; higher = more visible."
    )
    defects: tuple[str, ...] = Field(default=DEFECT_KINDS, description="Which defect tags may be injected.")


class SyntheticBackend:
    """Procedural scene compositing with known defects."""

    name = "synthetic"

    def __init__(self, options: SyntheticOptions | None = None) -> None:
        self.options = options or SyntheticOptions()

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """Make one candidate per request, in order."""
        raise NotImplementedError("synthetic backend is being written (issue 4)")
