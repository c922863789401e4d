"""Export throughput and memory: 1,500 samples x 5 images (512x512) in <= 60 s; peak RSS flat from 1.5k to 15k.

Sets up a workspace whose candidates reuse a pool of distinct 512x512 product photos (cheap setup);
the export still reads, cleans, validates and embeds every row's five images. Each export runs in
its own process so its peak RSS is measured alone. Baseline, in the same run: a bare pyarrow loop
that reads the same five files per row and writes them into Parquet (no validation, card or hashes).

    .venv/bin/python benchmarks/export_throughput.py                 # 1.5k timing + baseline
    .venv/bin/python benchmarks/export_throughput.py --rss 15000     # + peak RSS at 15k vs 1.5k
    .venv/bin/python benchmarks/export_throughput.py --regions       # with regions vs without (bar <= 1.10)

``--regions``: the same workspace twice, once with every injected defect's region recorded (a box, a point for
``shadow_missing``) and once without; each exported twice, alternating, in its own process; the ratio of the best
times is the cost of the ``regions`` column (merge, validation, the column itself).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Injected defects per slot A-D, cycling: 4 + 3 + 1 + 4 = 12 questions per 4 sources (3 per source).
PATTERNS = [
    [[], ["floating"], ["color_shifted", "shadow_missing"], []],
    [["visible_seam"], [], [], ["product_warped"]],
    [[], [], [], []],
    [["scale_wrong"], ["repeated_texture"], ["shadow_direction_wrong"], ["text_garbled"]],
]
SAMPLES_PER_SOURCE = 3
POOL = 48


def regions_of(tags: list[str], i: int) -> list:
    """A region per injected tag (deterministic, inside the image): a point for a missing shadow."""
    from schemas.regions import Region, region_kinds

    found = []
    for k, tag in enumerate(tags):
        x, y = 0.1 + 0.05 * ((i + k) % 8), 0.1 + 0.04 * ((i * 3 + k) % 10)
        box = (x, y, x, y) if region_kinds()[tag] == "point" else (x, y, x + 0.4, y + 0.45)
        found.append(Region(tag=tag, box=box))
    return found


def setup(root: Path, num_samples: int, regions: bool = False) -> None:
    """A workspace with num_samples / 3 sources, each with four candidates drawn from a pool of images
    (``regions``: each injected defect with its region)."""
    from medgen.sources.samples import draw_sample
    from medgen.workspace import init_workspace
    from schemas import Candidate, GenerationProvenance

    workspace = init_workspace(root)
    rng = np.random.default_rng(0)
    keys = []
    for _ in range(POOL):
        image, _ = draw_sample(rng)
        keys.append(workspace.store.put_image(image.resize((512, 512))))
    num_sources = num_samples // SAMPLES_PER_SOURCE
    provenance = GenerationProvenance(backend="synthetic", model_id="synthetic", recipe="background", seed=0)
    now = datetime.now(timezone.utc)
    with workspace.catalog.transaction() as conn:
        for i in range(num_sources):
            conn.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f"src{i:06d}",
                    f"p{i}.png",
                    keys[i % POOL],
                    keys[i % POOL],
                    512,
                    512,
                    "0" * 16,
                    0,
                    now.isoformat(),
                ),
            )
    candidates = [
        Candidate(
            id=f"src{i:06d}-{slot}",
            source_id=f"src{i:06d}",
            slot=slot,
            image_key=keys[(i * 7 + slot + 1) % POOL],
            provenance=provenance.model_copy(update={"seed": slot}),
            injected_defects=PATTERNS[i % len(PATTERNS)][slot],
            injected_regions=regions_of(PATTERNS[i % len(PATTERNS)][slot], i) if regions else None,
        )
        for i in range(num_sources)
        for slot in range(4)
    ]
    workspace.catalog.add_candidates(candidates)
    workspace.close()


def run_export(root: Path, version: str = "bench") -> dict[str, float]:
    from medgen.export.config import ExportConfig
    from medgen.export.dataset import export_dataset
    from medgen.workspace import open_workspace

    with open_workspace(root) as workspace:
        start = time.perf_counter()
        report = export_dataset(workspace, ExportConfig(version=version, labels="injected"))
        seconds = time.perf_counter() - start
    import pyarrow.parquet as pq

    written = sum(
        len(region)
        for path in (report.path / "data").glob("*.parquet")
        for row in pq.read_table(path, columns=["regions"]).column("regions").to_pylist()
        for region in row
    )
    return {"seconds": seconds, "samples": report.num_samples, "regions": written}


def run_baseline(root: Path) -> dict[str, float]:
    """Read the same five files per row and write them with a bare pyarrow ParquetWriter."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medgen.workspace import open_workspace

    with open_workspace(root) as workspace:
        start = time.perf_counter()
        schema = pa.schema([("id", pa.string()), ("images", pa.list_(pa.binary()))])
        out = root / "baseline"
        out.mkdir()
        writer = pq.ParquetWriter(out / "baseline.parquet", schema)
        rows, samples = [], 0
        for source in workspace.catalog.sources():
            paths = [workspace.store.path(source.image_key)]
            paths += [workspace.store.path(c.image_key) for c in workspace.catalog.candidates(source.id)]
            images = [path.read_bytes() for path in paths]
            for q in range(SAMPLES_PER_SOURCE):
                rows.append({"id": f"{source.id}/{q}", "images": images})
                samples += 1
                if len(rows) == 100:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
        writer.close()
        seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return {"seconds": seconds, "samples": samples}


def child(mode: str, root: Path, version: str = "bench") -> None:
    result = run_export(root, version) if mode == "export" else run_baseline(root)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(mode: str, root: Path, version: str = "bench") -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(root), version],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument(
        "--rss", type=int, default=0, help="Also export this many samples and compare peak RSS."
    )
    parser.add_argument(
        "--regions", action="store_true", help="Export with regions vs without, same workspace (ratio)."
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "WORKSPACE", "VERSION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return
    if args.regions:
        compare_regions(args.samples)
        return
    with tempfile.TemporaryDirectory(prefix="medgen-export-bench-") as tmp:
        small = Path(tmp) / "small"
        setup(small, args.samples)
        baseline = measure("baseline", small)
        export = measure("export", small)
        shutil.rmtree(small)
        ok = export["seconds"] <= 60
        print(
            f"export: {export['samples']:.0f} samples x 5 images (512x512) in {export['seconds']:.1f} s "
            f"({export['samples'] / export['seconds']:.0f} samples/s, bar <= 60 s: {'ok' if ok else 'FAIL'}); "
            f"bare pyarrow baseline {baseline['seconds']:.1f} s, ratio {export['seconds'] / baseline['seconds']:.2f}; "
            f"peak RSS {export['peak_rss_mb']:.0f} MB"
        )
        if args.rss:
            large = Path(tmp) / "large"
            setup(large, args.rss)
            big = measure("export", large)
            ratio = big["peak_rss_mb"] / export["peak_rss_mb"]
            print(
                f"export RSS: {export['samples']:.0f} samples {export['peak_rss_mb']:.0f} MB -> {big['samples']:.0f} "
                f"samples {big['peak_rss_mb']:.0f} MB ({big['seconds']:.0f} s), ratio {ratio:.2f} "
                f"(bar <= 1.3: {'ok' if ratio <= 1.3 else 'FAIL'})"
            )


def compare_regions(samples: int) -> None:
    """Export the same workspace with and without regions, alternating, twice each; print the ratio."""
    with tempfile.TemporaryDirectory(prefix="medgen-export-regions-") as tmp:
        roots = {"plain": Path(tmp) / "plain", "regions": Path(tmp) / "regions"}
        for name, root in roots.items():
            setup(root, samples, regions=name == "regions")
        best: dict[str, float] = {}
        regions: dict[str, int] = {}
        for attempt in range(2):
            for name, root in roots.items():
                result = measure("export", root, f"bench{attempt}")
                shutil.rmtree(root / "exports" / f"bench{attempt}")
                best[name] = min(best.get(name, float("inf")), result["seconds"])
                regions[name] = int(result["regions"])
        ratio = best["regions"] / best["plain"]
        print(
            f"export with regions: {samples} samples in {best['regions']:.1f} s, without {best['plain']:.1f} s "
            f"(best of 2 each), ratio {ratio:.3f} (bar <= 1.10: {'ok' if ratio <= 1.10 else 'FAIL'}); regions "
            f"written {regions['regions']} (without: {regions['plain']})"
        )


if __name__ == "__main__":
    main()
