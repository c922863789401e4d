"""Human-like errors on known labels: simulated annotators, and the simulated screener's pre-fills."""

from __future__ import annotations

import random
from dataclasses import dataclass

from annotation.consensus import SIMULATED_MARK
from schemas import TAXONOMY, CandidateLabel

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
    return CandidateLabel(defects=tuple(tags), acceptable=not tags, rationale=f"{MARK} {verdict} ({what})")
