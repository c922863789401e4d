"""Fixtures for generation tests: tiny random-weight diffusers pipelines (built once) and a plain backend."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from medgen.generation.backends.base import GeneratedImage, GenerationRequest
from medgen.generation.tiny_pipeline import build_tiny_pipeline
from schemas import GenerationProvenance


@pytest.fixture(scope="session")
def tiny_inpaint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny StableDiffusionInpaintPipeline (9-channel UNet)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-inpaint")


@pytest.fixture(scope="session")
def tiny_img2img(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny StableDiffusionImg2ImgPipeline (4-channel UNet)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-img2img", kind="img2img")


class FlatBackend:
    """A model-free backend for orchestration tests: a flat colour drawn from each request's seed.

    ``fail_sources`` raise for those sources; ``calls`` records the requests of every call.
    """

    name = "flat"

    def __init__(self, fail_sources: set[str] | None = None):
        self.fail_sources = fail_sources or set()
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        self.calls.append(list(requests))
        results = []
        for request in requests:
            if request.source.id in self.fail_sources:
                raise RuntimeError(f"cannot make {request.source.id[:8]}\nsecond line")
            colour = tuple(random.Random(request.seed).randrange(256) for _ in range(3))
            image = Image.new("RGB", (32, 32), colour)
            provenance = GenerationProvenance(
                backend=self.name, model_id="flat", recipe="flat", seed=request.seed
            )
            results.append(GeneratedImage(request=request, image=image, provenance=provenance))
        return results


@pytest.fixture
def flat_backend() -> FlatBackend:
    return FlatBackend()
