"""Synthetic backend throughput: 512x512 candidates per second. Bar: >= 40 images/s on 2 CPU cores.

Sources are the bundled samples (``medgen.sources.samples``), ingested the way ``medgen sources add`` does
(normalised RGB + alpha or OpenCV mask). Requests cycle through sources and the four slots with
per-candidate seeds, in batches of 4 as ``medgen generate`` sends them, so roughly half the
candidates carry defects. Baseline, in the same run: plain PIL resize + paste of the product (via
its mask) onto a flat background, the least a compositing backend can do. PNG encoding, done by
the orchestrator, is timed separately.

End to end, ``generate()`` into a fresh workspace, storage included (bar: >= 100 images/s at 512x512).

    .venv/bin/python benchmarks/synthetic_throughput.py [--images 400] [--resolution 512] [--e2e-images 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medgen.generation.backends.base import GenerationRequest, candidate_seed  # noqa: E402
from medgen.generation.backends.synthetic import SyntheticBackend  # noqa: E402
from medgen.generation.config import SyntheticOptions  # noqa: E402
from medgen.sources.ingest import load_and_normalise, product_mask  # noqa: E402
from medgen.sources.samples import write_samples  # noqa: E402
from medgen.workspace.store import png_bytes  # noqa: E402
from schemas import SourceImage  # noqa: E402

BAR = 40.0
E2E_BAR = 100.0


def end_to_end(num_images: int, resolution: int) -> tuple[float, float]:
    """Images/s of ``generate()`` into a fresh workspace (PNG encoding, files made durable, manifests, catalog)."""
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.sources.ingest import add_sources
    from medgen.workspace import init_workspace

    with tempfile.TemporaryDirectory() as tmp:
        workspace = init_workspace(Path(tmp) / "ws")
        add_sources(workspace, write_samples(Path(tmp) / "photos", max(1, num_images // 4), seed=0))
        start = time.perf_counter()
        options = SyntheticOptions(resolution=resolution)
        report = generate(workspace, GenerationConfig(backend="synthetic", synthetic=options))
        seconds = time.perf_counter() - start
        sizes = [workspace.store.path(c.image_key).stat().st_size for c in workspace.catalog.candidates()]
        workspace.close()
    return report.images_generated / seconds, sum(sizes) / len(sizes) / 1024


def load_requests(num_images: int, num_sources: int = 8) -> list[GenerationRequest]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_samples(tmp, num_sources, seed=0)
        loaded = []
        for i, path in enumerate(paths):
            image = load_and_normalise(path)
            mask = image.alpha_mask if image.alpha_mask is not None else product_mask(image.rgb)
            source = SourceImage(
                id=f"{i:064x}",
                original_name=path.name,
                image_key="-",
                mask_key="-",
                width=image.rgb.width,
                height=image.rgb.height,
                phash="0" * 16,
                mask_from_alpha=image.alpha_mask is not None,
                added_at="2026-01-01T00:00:00Z",
            )
            loaded.append((source, image.rgb, mask))
    requests = []
    for n in range(num_images):
        source, rgb, mask = loaded[(n // 4) % len(loaded)]
        slot, base_seed = n % 4, n // (4 * len(loaded))
        requests.append(
            GenerationRequest(source, rgb, mask, slot, candidate_seed(base_seed, source.id, slot), base_seed)
        )
    return requests


def baseline(requests: list[GenerationRequest], size: int) -> list[Image.Image]:
    """PIL: crop to the mask, resize to ~45% of the frame height, paste onto a flat colour."""
    out = []
    for request in requests:
        box = request.mask.getbbox()
        product, mask = request.image.crop(box), request.mask.crop(box)
        scale = 0.45 * size / product.height
        new = (max(1, round(product.width * scale)), max(1, round(product.height * scale)))
        canvas = Image.new("RGB", (size, size), (214, 200, 178))
        canvas.paste(
            product.resize(new, Image.BILINEAR),
            ((size - new[0]) // 2, size - new[1] - size // 10),
            mask.resize(new, Image.BILINEAR),
        )
        out.append(canvas)
    return out


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--e2e-images", type=int, default=1000, help="images made end to end (x/4 sources)")
    args = parser.parse_args()

    requests = load_requests(args.images)
    backend = SyntheticBackend(SyntheticOptions(resolution=args.resolution))
    backend.generate(requests[:4])  # warm-up: builds the texture bank once per process

    def run_backend(reqs):
        results = []
        for i in range(0, len(reqs), 4):
            results.extend(backend.generate(reqs[i : i + 4]))
        return results

    seconds, results = timed(run_backend, requests)
    base_seconds, _ = timed(baseline, requests, args.resolution)
    png_seconds, _ = timed(lambda rs: [png_bytes(r.image) for r in rs], results)
    rate, base_rate = len(requests) / seconds, len(requests) / base_seconds
    defective = sum(bool(r.injected_defects) for r in results)
    load = os.getloadavg()[0]
    e2e_rate, mean_kib = end_to_end(args.e2e_images, args.resolution)
    print(
        f"end to end (`medgen generate --backend synthetic`, storage included, {args.e2e_images} images): "
        f"{e2e_rate:.1f} images/s "
        f"| bar {E2E_BAR:.0f}/s: {'PASS' if e2e_rate >= E2E_BAR else 'FAIL'} | mean PNG {mean_kib:.0f} KiB"
    )
    print(
        f"synthetic backend: {rate:.1f} images/s at {args.resolution}x{args.resolution} "
        f"({len(requests)} images, {defective} with defects) | bar {BAR:.0f}/s: {rate / BAR:.2f}x "
        f"{'PASS' if rate >= BAR else 'FAIL'} | baseline PIL resize+paste {base_rate:.1f} images/s: "
        f"{rate / base_rate:.2f}x of baseline | +PNG encode (orchestrator): "
        f"{len(requests) / (seconds + png_seconds):.1f} images/s | cpus {os.cpu_count()}, load {load:.1f}"
    )


if __name__ == "__main__":
    main()
