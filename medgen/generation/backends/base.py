"""The interface between generation orchestration (``medgen.generation.generate``) and a backend.

The orchestrator decides *what* is missing (which source, which slot, which seed), shards it by
rank, stores files and catalog rows and records failures. A backend only turns requests into
images. Backends: ``medgen.generation.backends.diffusers_backend`` and ``medgen.generation.backends.synthetic``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from medgen.errors import MedgenError
from schemas import GenerationProvenance, SourceImage
from schemas.regions import Region


class GenerationAborted(MedgenError):
    """A backend error that no later source can avoid (out of memory, broken pipeline): the run stops."""


def candidate_seed(base_seed: int, source_id: str, slot: int) -> int:
    """Per-candidate seed: stable for (base seed, source, slot), independent of batching and rank."""
    digest = hashlib.sha256(f"{base_seed}:{source_id}:{slot}".encode()).hexdigest()
    return int(digest[:8], 16)


@dataclass(frozen=True)
class GenerationRequest:
    """One candidate to make."""

    source: SourceImage
    image: Image.Image  # the source's RGB pixels
    mask: Image.Image  # L mode, 255 = product
    slot: int
    seed: int
    base_seed: int = 0  # the run's --seed, for choices a backend makes per source rather than per candidate


@dataclass(frozen=True)
class GeneratedImage:
    """One candidate made, with how it was made and (synthetic only) its known defects."""

    request: GenerationRequest
    image: Image.Image
    provenance: GenerationProvenance
    injected_defects: list[str] | None = None
    injected_regions: list[Region] | None = None  # where each injected defect shows (synthetic only)


class Backend(Protocol):
    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """Make one image per request, in order. May batch internally. Raises on failure."""
        ...
