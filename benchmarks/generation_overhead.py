"""Orchestration overhead of ``medgen generate`` over a bare diffusers loop. Bar: wall-time ratio <= 1.05.

Both sides load the same tiny random-weight inpainting pipeline (``medgen.tiny_pipeline``) on CPU
and make the same pipeline calls (same inputs, prompts, seeds, batches of 4, ``background``
recipe), then paste the product back and save PNGs. medgen adds what makes it a product: planning
from the catalog, the checkpoint hash, content-addressed atomic writes, shard manifests, the
catalog merge and the run report. The bare loop's images must equal medgen's, pixel for pixel, so
the two really do the same work. Each side runs ``--repeats`` times, alternating; the best time
of each counts (the machine may be shared).

    .venv/bin/python benchmarks/generation_overhead.py [--sources 6] [--steps 10] [--resolution 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medgen.backend import candidate_seed  # noqa: E402
from medgen.diffusers_backend import working_size  # noqa: E402
from medgen.generate import generate  # noqa: E402
from medgen.generation_config import GenerationConfig  # noqa: E402
from medgen.samples import write_samples  # noqa: E402
from medgen.sources import add_sources  # noqa: E402
from medgen.tiny_pipeline import build_tiny_pipeline  # noqa: E402
from medgen.workspace import Workspace, init_workspace  # noqa: E402

BAR = 1.05


def run_medgen(root: Path, photos: Path, config: GenerationConfig) -> tuple[float, Workspace]:
    workspace = init_workspace(root)
    add_sources(workspace, [photos])
    start = time.perf_counter()
    report = generate(workspace, config)
    elapsed = time.perf_counter() - start
    assert (
        report.images_generated == len(workspace.catalog.sources()) * config.candidates
        and not report.failures
    )
    return elapsed, workspace


def run_bare(
    workspace: Workspace, config: GenerationConfig, out: Path
) -> tuple[float, dict[tuple[str, int], Path]]:
    """What a user would write with diffusers alone: load, loop over sources, call, paste, save."""
    import torch
    from diffusers import AutoPipelineForInpainting
    from PIL import Image, ImageOps

    sources = sorted(workspace.catalog.sources(), key=lambda s: s.id)
    inputs = [
        (s, workspace.store.open(s.image_key).convert("RGB"), workspace.store.open(s.mask_key).convert("L"))
        for s in sources
    ]
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    start = time.perf_counter()
    pipe = AutoPipelineForInpainting.from_pretrained(config.model).to("cpu")
    pipe.set_progress_bar_config(disable=True)
    for source, image, mask in inputs:
        size = working_size(*image.size, config.resolution)
        keep = mask.point(lambda v: 255 if v >= 128 else 0)
        seeds = [candidate_seed(config.seed, source.id, slot) for slot in range(config.candidates)]
        prompts = [config.prompt_for(seed) for seed in seeds]
        result = pipe(
            prompt=prompts,
            image=[image.resize(size, Image.Resampling.LANCZOS)] * len(seeds),
            mask_image=[
                ImageOps.invert(
                    keep.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v >= 128 else 0)
                )
            ]
            * len(seeds),
            negative_prompt=[config.negative_prompt] * len(seeds),
            strength=config.strength,
            height=size[1],
            width=size[0],
            num_inference_steps=config.steps,
            guidance_scale=config.guidance,
            generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
        ).images
        for slot, generated in enumerate(result):
            output = generated.resize(image.size, Image.Resampling.LANCZOS)
            output.paste(image, (0, 0), keep)
            path = out / f"{source.id[:16]}-{slot}.png"
            output.save(path)
            files[(source.id, slot)] = path
    return time.perf_counter() - start, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = build_tiny_pipeline(tmp_path / "tiny-inpaint")
        photos = tmp_path / "photos"
        write_samples(photos, args.sources, seed=0)
        config = GenerationConfig(
            model=str(model), device="cpu", steps=args.steps, resolution=args.resolution, batch_size=4
        )
        medgen_times, bare_times = [], []
        for repeat in range(args.repeats):
            elapsed, workspace = run_medgen(tmp_path / f"ws-{repeat}", photos, config)
            medgen_times.append(elapsed)
            elapsed, files = run_bare(workspace, config, tmp_path / f"bare-{repeat}")
            bare_times.append(elapsed)
            for candidate in workspace.catalog.candidates():
                ours = np.asarray(workspace.store.open(candidate.image_key))
                theirs = np.asarray(_open(files[(candidate.source_id, candidate.slot)]))
                assert np.array_equal(ours, theirs), "medgen and the bare loop made different images"
            workspace.close()
    images = args.sources * config.candidates
    medgen_best, bare_best = min(medgen_times), min(bare_times)
    ratio = medgen_best / bare_best
    print(
        f"generation overhead: medgen generate {medgen_best:.2f}s vs bare diffusers loop {bare_best:.2f}s for {images} "
        f"images ({args.steps} steps, {args.resolution}px, CPU): ratio {ratio:.3f} (bar <= {BAR}) "
        f"{'PASS' if ratio <= BAR else 'FAIL'}"
    )


def _open(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


if __name__ == "__main__":
    main()
