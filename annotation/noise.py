"""Human-like errors on known labels: simulated annotators, and the simulated screener's pre-fills."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from annotation.consensus import SIMULATED_MARK
from schemas import TAXONOMY, CandidateLabel
from schemas.regions import Region

MARK = SIMULATED_MARK


@dataclass(frozen=True)
class Noise:
    """Per-candidate error rates of a simulated annotator."""

    missed_tag: float
    extra_tag: float
    flipped: float
    skip: float  # per task


def noisy_label(truth: CandidateLabel, noise: Noise, rng: random.Random) -> CandidateLabel:
    """One candidate's answer: the truth with a missed tag, an extra tag or a flipped verdict, kept consistent."""
    tags = set(truth.defects)
    all_tags = [tag.id for d in TAXONOMY.dimensions for tag in d.tags if not tag.needs_note]
    roll = rng.random()
    if roll < noise.flipped:
        tags = set() if tags else {rng.choice(all_tags)}
        what = "flipped verdict"
    elif roll < noise.flipped + noise.missed_tag and tags:
        tags.discard(rng.choice(sorted(tags)))
        what = "missed a tag"
    elif roll < noise.flipped + noise.missed_tag + noise.extra_tag:
        tags.add(rng.choice(all_tags))
        what = "extra tag"
    else:
        what = "as labelled"
    verdict = "no visible defect" if not tags else "defects: " + ", ".join(sorted(tags))
    return CandidateLabel(
        defects=tuple(tags),
        acceptable=not tags,
        rationale=f"{MARK} {verdict} ({what})",
        regions=placed(truth, tags),
    )


def placed(truth: CandidateLabel, tags: set[str]) -> tuple[Region, ...]:
    """Where a simulated person marks the true defects they kept: the true region, up to 2 % of the image off.
    The offset is drawn from the region itself (not from the caller's generator, whose draws stay as they were)."""
    found = []
    for region in truth.regions:
        if region.tag not in tags:
            continue
        rng = random.Random(hashlib.sha256(repr((region.tag, region.box)).encode()).hexdigest())
        dx, dy = rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02)
        x0, y0, x1, y1 = region.box
        dx = min(max(dx, -x0), 1 - x1)  # the whole box moves, and stays inside the image
        dy = min(max(dy, -y0), 1 - y1)
        found.append(Region(tag=region.tag, box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy)))
    return tuple(found)
