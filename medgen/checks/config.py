"""How `medgen check` measures a candidate against its original, and where each finding's threshold sits.

Every threshold is here, with what it is compared to; the defaults were calibrated on one half of the
checks' evaluation set and are reported on the other (``benchmarks/checks_accuracy.py``,
``benchmarks/README.md``). Change one in a YAML/JSON file given to ``--config`` or with its flag.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field

CHECKS_VERSION = "1"
"""Bump when a measurement changes meaning: stored results of another version are measured again."""


class CheckConfig(BaseModel):
    """What the checks measure at which size, the threshold of each finding, and where outputs go."""

    work_size: int = Field(
        default=384,
        ge=128,
        le=2048,
        description="Long side, in pixels, at which original and candidate are compared (OCR reads full size).",
    )
    ocr: bool = Field(
        default=False,
        description="Also read the printed text with Tesseract and compare it with the original's (about three"
        " candidates a second; reported as ocr_similarity).",
    )
    ocr_languages: str = Field(
        default="eng+chi_sim",
        description="Tesseract languages for the printed text (Debian tesseract-ocr-*).",
    )
    min_located: float = Field(
        default=0.46,
        ge=0.0,
        le=1.0,
        description="Least locating score to call the original's product found: the lower of how it was located"
        " (feature inliers / 20, or the template's correlation) and how much its edges (outline, print) agree"
        " with the original's there. Below it the product is reported missing and nothing else is judged.",
    )
    color_delta_e: float = Field(
        default=5.6,
        gt=0,
        description="color_shifted: median colour difference (CIE Delta E a*b*, chromatic parts) above this.",
    )
    warp_percent: float = Field(
        default=0.67,
        gt=0,
        description="product_warped: 90th percentile of the non-rigid displacement, % of the product's long side.",
    )
    print_similarity: float = Field(
        default=0.74,
        gt=0,
        le=1,
        description="text_garbled: structural similarity of the printed area (after alignment) below this.",
    )
    ocr_similarity: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="text_garbled: similarity of the text read in candidate and original below this (0: OCR is"
        " reported, never a finding on its own; Tesseract misreads too many untouched candidates, see"
        " benchmarks/README.md).",
    )
    cropped_share: float = Field(
        default=0.088,
        gt=0,
        lt=1,
        description="product_cropped: share of the product's area outside the frame above this.",
    )
    scale_tolerance: float = Field(
        default=0.19,
        gt=0,
        description="scale_wrong: |log(scale / expected scale)| above this (0.19 = 21 % larger or 17 % smaller).",
    )
    occluded_share: float = Field(
        default=0.026,
        gt=0,
        lt=1,
        description="occluded: share of the product covered by one region unlike the original above this.",
    )
    seam_delta_e: float = Field(
        default=4.5,
        gt=0,
        description="visible_seam: consistent colour step (Delta E) along the generation boundary above this.",
    )
    halo_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="visible_seam, in place: drop in the share of the ring around the product still showing the"
        " original's backdrop, from within the ring to beyond it, above this.",
    )
    repeat_score: float = Field(
        default=0.82,
        gt=0,
        le=1,
        description="repeated_texture: normalised autocorrelation of the generated area at a non-zero shift"
        " above this.",
    )
    expected_scale: float | None = Field(
        default=None,
        gt=0,
        description="scale_wrong: the product's expected size in the candidate, candidate px per original px"
        " (none: 1 for the diffusers recipes, else the median over the source's candidates).",
    )
    drop_confidence: float = Field(
        default=0.9,
        ge=0.5,
        le=1.0,
        description="`generate --drop-failing` keeps a candidate from annotators when a finding is at least this"
        " confident.",
    )
    output_dir: Path | None = Field(
        default=None, description="Folder for checks.jsonl, checks.csv and index.html (none: catalog only)."
    )

    def digest(self) -> str:
        """What a stored result was measured with: the checks' version and every setting but the outputs."""
        settings = self.model_dump(mode="json", exclude={"output_dir", "drop_confidence"})
        blob = json.dumps({"version": CHECKS_VERSION, **settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
