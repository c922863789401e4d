"""From measured values to findings: which taxonomy tag each check judges, against which threshold.

A finding names its tag, the measured value, the threshold it crossed and a confidence: how far past the
threshold the value lies (0.5 at the threshold, about 0.98 at twice the distance of the threshold from
zero). It is an ordering, not a calibrated probability. ``benchmarks/checks_accuracy.py`` measures how
often each finding is right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from medgen.checks.config import CheckConfig


class Finding(BaseModel):
    """One failed check."""

    tag: str
    value: float
    threshold: float
    confidence: float
    check: str  # the measured value it comes from


@dataclass(frozen=True)
class Rule:
    tag: str
    value: str  # key of the measured values
    setting: str  # CheckConfig field holding the threshold
    above: bool  # True: values above the threshold fail; False: below


RULES: tuple[Rule, ...] = (
    Rule("appearance_other", "located", "min_located", above=False),
    Rule("product_warped", "warp_percent", "warp_percent", above=True),
    Rule("color_shifted", "color_delta_e", "color_delta_e", above=True),
    Rule("text_garbled", "print_similarity", "print_similarity", above=False),
    Rule("text_garbled", "ocr_similarity", "ocr_similarity", above=False),
    Rule("product_cropped", "cropped_share", "cropped_share", above=True),
    Rule("scale_wrong", "scale_change", "scale_tolerance", above=True),
    Rule("occluded", "occluded_share", "occluded_share", above=True),
    Rule("visible_seam", "seam_delta_e", "seam_delta_e", above=True),
    Rule("visible_seam", "halo_share", "halo_share", above=True),
    Rule("repeated_texture", "repeat_score", "repeat_score", above=True),
)
"""Every check that can fail. ``appearance_other`` here means: the original's product was not found."""

JUDGED_TAGS: tuple[str, ...] = tuple(dict.fromkeys(rule.tag for rule in RULES))

NOT_JUDGED: dict[str, str] = {
    "logo_altered": "a logo is print: a changed one lowers the print similarity (text_garbled), no check of its own",
    "parts_missing_or_extra": "a missing cap or blister reads as an occlusion or a bend; no check tells them apart",
    "shadow_missing": "needs the scene's light; the original has none to compare with",
    "shadow_direction_wrong": "needs the scene's light",
    "lighting_inconsistent": "the lightness change is measured (lightness_delta), but a new scene may light the"
    " product differently on purpose",
    "reflection_wrong": "needs the scene's geometry",
    "floating": "needs the support surface",
    "composition_unbalanced": "taste, not a measurement",
    "illogical_scene": "needs scene understanding (a VLM: `medgen screen`)",
    "perspective_mismatch": "needs the scene's geometry",
}
"""Tags the checks leave to people or a trained screener, and why."""


def scale_change(scale: float | None, expected: float | None) -> float | None:
    """|log(scale / expected)|: 0 when the product kept its expected size."""
    if scale is None or expected is None or scale <= 0 or expected <= 0:
        return None
    return abs(math.log(scale / expected))


def confidence(value: float, threshold: float, above: bool) -> float:
    """0.5 at the threshold, rising with the distance past it relative to the threshold's own size."""
    reach = abs(threshold) or 1.0
    margin = (value - threshold if above else threshold - value) / reach
    return round(1 / (1 + math.exp(-4 * margin)), 4)


def findings(values: dict[str, float | None], config: CheckConfig, skip: Sequence[str] = ()) -> list[Finding]:
    """The failed checks among ``values`` (None values are not judged), at most one finding per tag: its
    most confident check. ``skip``: tags not to judge."""
    found: dict[str, Finding] = {}
    for rule in RULES:
        value = values.get(rule.value)
        if value is None or rule.tag in skip or (rule.tag != "appearance_other" and missing(values, config)):
            continue
        threshold = float(getattr(config, rule.setting))
        failed = value > threshold if rule.above else value < threshold
        if not failed:
            continue
        finding = Finding(
            tag=rule.tag,
            value=round(float(value), 4),
            threshold=threshold,
            confidence=confidence(float(value), threshold, rule.above),
            check=rule.value,
        )
        if rule.tag not in found or finding.confidence > found[rule.tag].confidence:
            found[rule.tag] = finding
    return list(found.values())


def missing(values: dict[str, float | None], config: CheckConfig) -> bool:
    """Whether the original's product was not found in the candidate (then nothing else about it is judged)."""
    located = values.get("located")
    return located is not None and located < config.min_located
