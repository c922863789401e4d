"""Orchestration overhead of ``medgen generate`` over a bare diffusers loop. Bar: wall-time ratio <= 1.05.

Both sides load the same tiny random-weight inpainting pipeline (``medgen.generation.tiny_pipeline``) on CPU
and make the same pipeline calls (same inputs, prompts, seeds, batches of 4, ``background``
recipe), then paste the product back and save PNGs. medgen adds what makes it a product: planning
from the catalog, the checkpoint hash, content-addressed atomic writes, shard manifests, the
catalog merge and the run report. The bare loop's images must equal medgen's, pixel for pixel, so
the two really do the same work. Both run ``--repeats`` times in back-to-back pairs (which side goes
first alternates); the ratio is of the median times (the machine may be shared). 1 torch thread by
default, so timings hold still while other work runs.

    .venv/bin/python benchmarks/generation_overhead.py [--sources 6] [--steps 10] [--resolution 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medgen.generation.backends.base import candidate_seed  # noqa: E402
from medgen.generation.backends.diffusers_backend import working_size  # noqa: E402
from medgen.generation.config import GenerationConfig  # noqa: E402
from medgen.generation.generate import generate  # noqa: E402
from medgen.generation.tiny_pipeline import build_tiny_pipeline  # noqa: E402
from medgen.sources.ingest import add_sources  # noqa: E402
from medgen.sources.samples import write_samples  # noqa: E402
from medgen.workspace import Workspace, init_workspace  # noqa: E402

BAR = 1.05


def run_medgen(root: Path, photos: Path, config: GenerationConfig) -> tuple[float, float, Workspace]:
    """(wall s, CPU s, workspace) of ``generate`` on a fresh workspace holding the samples."""
    workspace = init_workspace(root)
    add_sources(workspace, [photos])
    start, cpu = time.perf_counter(), time.process_time()
    report = generate(workspace, config)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert (
        report.images_generated == len(workspace.catalog.sources()) * config.candidates
        and not report.failures
    )
    return elapsed, cpu, workspace


def run_bare(
    workspace: Workspace, config: GenerationConfig, out: Path
) -> tuple[float, float, dict[tuple[str, int], Path]]:
    """What a user would write with diffusers alone: load, loop over sources, call, paste, save."""
    import torch
    from diffusers import AutoPipelineForInpainting
    from PIL import Image, ImageOps

    sources = sorted(workspace.catalog.sources(), key=lambda s: s.id)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    start, cpu = time.perf_counter(), time.process_time()
    inputs = [
        (s, workspace.store.open(s.image_key).convert("RGB"), workspace.store.open(s.mask_key).convert("L"))
        for s in sources
    ]
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
            output.save(
                path, compress_level=1
            )  # the PNG setting medgen uses: compare orchestration, not zlib
            files[(source.id, slot)] = path
    return time.perf_counter() - start, time.process_time() - cpu, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; 1 keeps timings stable on a shared machine"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = build_tiny_pipeline(tmp_path / "tiny-inpaint")
        photos = tmp_path / "photos"
        write_samples(photos, args.sources, seed=0)
        config = GenerationConfig(
            model=str(model), device="cpu", steps=args.steps, resolution=args.resolution, batch_size=4
        )
        times: dict[str, list[float]] = {"medgen": [], "bare": [], "medgen_cpu": [], "bare_cpu": []}
        for repeat in range(args.repeats):
            # Back-to-back pairs, the first side alternating, so both see about the same machine load.
            for side in ("medgen", "bare") if repeat % 2 == 0 else ("bare", "medgen"):
                if side == "medgen":
                    elapsed, cpu, workspace = run_medgen(tmp_path / f"ws-{repeat}", photos, config)
                else:
                    reference = init_workspace(tmp_path / f"ref-{repeat}")
                    add_sources(reference, [photos])
                    elapsed, cpu, files = run_bare(reference, config, tmp_path / f"bare-{repeat}")
                    reference.close()
                times[side].append(elapsed)
                times[f"{side}_cpu"].append(cpu)
            for candidate in workspace.catalog.candidates():
                ours = np.asarray(workspace.store.open(candidate.image_key))
                theirs = np.asarray(_open(files[(candidate.source_id, candidate.slot)]))
                assert np.array_equal(ours, theirs), "medgen and the bare loop made different images"
            workspace.close()
    images = args.sources * config.candidates
    median = {side: statistics.median(values) for side, values in times.items()}
    ratio = median["medgen"] / median["bare"]
    print(
        f"runs (s): medgen {[round(t, 2) for t in times['medgen']]}, bare {[round(t, 2) for t in times['bare']]}"
    )
    print(
        f"generation overhead: medgen generate {median['medgen']:.2f}s vs bare diffusers loop {median['bare']:.2f}s "
        f"(medians of {args.repeats}) for {images} images ({args.steps} steps, {args.resolution}px, CPU, "
        f"{args.threads} torch thread(s)): wall-time ratio {ratio:.3f} (bar <= {BAR}) {'PASS' if ratio <= BAR else 'FAIL'}; "
        f"CPU-time ratio {median['medgen_cpu'] / median['bare_cpu']:.3f}"
    )


def _open(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


if __name__ == "__main__":
    main()
