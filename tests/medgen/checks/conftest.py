"""Helpers of the checks' tests: workspaces whose candidates carry perturbations of the evaluation set."""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks.checks_evalset import draw_original, make_item
from medgen.workspace import Workspace


def add_perturbed_sources(workspace: Workspace, tags_per_source: list[list[str | None]]) -> list[str]:
    """Sources added from sample photos, their candidates stored as a diffusers `background` run would."""
    from medgen.sources.ingest import add_sources
    from medgen.workspace.store import png_bytes
    from schemas import Candidate, GenerationProvenance

    rng = np.random.default_rng(1)
    folder = workspace.root.parent / f"photos-{len(workspace.catalog.sources())}"
    folder.mkdir()
    originals = []
    for i in range(len(tags_per_source)):
        original = draw_original(rng)
        Image.fromarray(original[0]).save(folder / f"p{i}.png")
        originals.append(original)
    add_sources(workspace, sorted(folder.iterdir()))
    by_name = {s.original_name: s for s in workspace.catalog.sources()}
    candidates = []
    for i, (original, tags) in enumerate(zip(originals, tags_per_source, strict=True)):
        source = by_name[f"p{i}.png"]
        for slot, tag in enumerate(tags):
            image = Image.fromarray(make_item(rng, tag, original=original).candidate)
            provenance = GenerationProvenance(
                backend="diffusers", model_id="m", recipe="background", seed=slot
            )
            key = workspace.store.put_bytes(png_bytes(image))
            candidates.append(
                Candidate(
                    id=f"{source.id[:12]}{slot}",
                    source_id=source.id,
                    slot=slot,
                    image_key=key,
                    provenance=provenance,
                )
            )
    workspace.catalog.add_candidates(candidates)
    return [by_name[f"p{i}.png"].id for i in range(len(tags_per_source))]
