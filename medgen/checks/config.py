"""How `medgen check` measures a candidate against its original, and where each finding's threshold sits.

Every threshold is here, with what it is compared to; the defaults were calibrated on one half of the
checks' evaluation set and are reported on the other (``benchmarks/checks_accuracy.py``,
``benchmarks/README.md``). Change one in a YAML/JSON file given to ``--config`` or with its flag.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

CHECKS_VERSION = "1"
"""Bump when a measurement changes meaning: stored results of another version are measured again."""


def _threshold(default: float, description: str, high: float | None = None) -> Any:
    """A finding's threshold field: a number from 0 (to ``high``)."""
    return Field(default=default, ge=0.0, le=high, description=description)


class CheckConfig(BaseModel):
    """What the checks measure at which size, the threshold of each finding, and where outputs go."""

    work_size: int = Field(384, ge=128, le=2048, description="Long side, px, at which products are located.")
    ocr: bool = Field(
        False,
        description=(
            "Also read the printed text with Tesseract and compare it with the original's (about three"
            " candidates a second; reported as ocr_similarity)."
        ),
    )
    ocr_languages: str = Field("eng+chi_sim", description="Tesseract's languages (Debian tesseract-ocr-*).")
    # Each finding's threshold; the defaults were calibrated by benchmarks/checks_accuracy.py.
    min_located: float = _threshold(
        0.46,
        "Least locating score to call the original's product found: the lower of how it was located (feature"
        " inliers / 20, or the template's correlation) and how much its edges (outline, print) agree with the"
        " original's there. Below it the product is reported missing and nothing else is judged.",
        high=1.0,
    )
    color_delta_e: float = _threshold(
        5.6, "color_shifted: median colour difference (CIE Delta E a*b*, coloured parts) above this."
    )
    warp_percent: float = _threshold(
        0.67, "product_warped: 90th percentile of the non-rigid displacement, % of the product's long side."
    )
    print_similarity: float = _threshold(
        0.74, "text_garbled: structural similarity of the printed area (bend undone) below this.", high=1.0
    )
    ocr_similarity: float = _threshold(
        0.0,
        "text_garbled: similarity of the text read in candidate and original below this (0: OCR is reported,"
        " never a finding on its own; Tesseract misreads too many untouched candidates, see benchmarks/README.md).",
        high=1.0,
    )
    cropped_share: float = _threshold(
        0.088, "product_cropped: share of the product's area outside the frame above this.", high=1.0
    )
    scale_tolerance: float = _threshold(
        0.19, "scale_wrong: |log(scale / expected scale)| above this (0.19: 21 % larger or 17 % smaller)."
    )
    occluded_share: float = _threshold(
        0.026,
        "occluded: share of the product covered by one region unlike the original above this.",
        high=1.0,
    )
    seam_delta_e: float = _threshold(
        4.5, "visible_seam: consistent colour step (Delta E) along the generation boundary above this."
    )
    halo_share: float = _threshold(
        0.5,
        "visible_seam, in place: drop in the share of the ring around the product still showing the original's"
        " backdrop, from within the ring to beyond it, above this.",
        high=1.0,
    )
    repeat_score: float = _threshold(
        0.82,
        "repeated_texture: normalised autocorrelation of the outpainted area at a non-zero shift above this.",
        high=1.0,
    )
    expected_scale: float | None = Field(
        None,
        gt=0,
        description=(
            "scale_wrong: the product's expected size in the candidate, candidate px per original px (none: 1 for"
            " the diffusers recipes, the median of the candidates for plain files, not judged otherwise)."
        ),
    )
    drop_confidence: float = Field(
        0.9, ge=0.5, le=1.0, description="`generate --drop-failing` drops a candidate on a finding this sure."
    )
    output_dir: Path | None = Field(None, description="Folder for checks.jsonl, checks.csv and index.html.")

    def digest(self) -> str:
        """What a stored result was measured with: the checks' version and every setting but the outputs."""
        settings = self.model_dump(mode="json", exclude={"output_dir", "drop_confidence"})
        blob = json.dumps({"version": CHECKS_VERSION, **settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
