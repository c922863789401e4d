"""Scale: does every stage keep a flat cost per source from 1,500 to 50,000 sources (x 4 candidates)?

For each N, on a fresh workspace and a fresh Label Studio (SQLite, or PostgreSQL with ``--postgres``),
the benchmark runs the commands a user runs, each in its own process, and times it:

    sources add -> generate (synthetic, storage included) -> annotate push -> simulated annotation
    -> annotate pull + annotate agreement -> export -> status

Setup, not timed: N distinct source photos at ``--resolution`` (two of 256 procedural products, placed
and scaled at random on a studio backdrop like the bundled samples'), and the Label Studio server's start.
The team: two annotators, each source to one of them, 5 % gold to both (so agreement has gold and
overlap to score). Simulated annotation is the demo's: one Label Studio API call per task, as a
person's browser makes.

Per step it prints seconds, milliseconds per source, the step process's peak RSS (``ru_maxrss`` from
``wait4``; Label Studio's server is not counted), and for the largest N against the smallest: the cost
per source ratio and the RSS ratio (bars <= 1.3), and ``status`` wall time (bar < 1 s at 50k). The CPU
time per source of the step's process (user + system) and its ratio tell the code's cost from the disk's:
a step whose wall cost grows while its CPU cost stays flat is waiting on reads.

Before each timed step dirty pages are flushed and the benchmark's files (photos, workspace, Label Studio's
data) dropped from the page cache, so every N reads from disk as a step run the next day would (``--hot``
keeps them cached; then the small N reads from memory what the large N reads from disk).

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --sources 1500 15000 50000 [--postgres]
    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --sources 1500 128000 --no-annotation  # the one-off (~2 h, ~30 GB)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ANNOTATORS = "ann1,ann2"
GOLD_RATE = 0.05
BAR_RATIO = 1.3
STATUS_BAR_S = 1.0
POOL = 256  # distinct procedural products; each source puts one on its own backdrop
STEPS = ("sources add", "generate", "push", "simulated annotation", "pull", "agreement", "export", "status")


@dataclass
class Step:
    name: str
    seconds: float
    rss_mb: float
    cpu_seconds: float  # the step process's user + system time (not Label Studio's, not the disk's waits)


def _photo(args: tuple[int, int, Path]) -> None:
    from medgen.sources.samples import _backdrop  # a studio backdrop, as the bundled samples have

    index, side, folder = args
    rng = np.random.default_rng(1_000_003 * index + 17)
    backdrop = _backdrop(rng, side, side, dark=bool(rng.random() < 0.35))
    for _ in range(2):  # two products side by side: enough variety that no two photos share a phash
        product = _products(side)[int(rng.integers(POOL))]
        scale = rng.uniform(0.3, 0.55)
        size = (max(8, int(product.width * scale)), max(8, int(product.height * scale)))
        cutout = product.resize(size, Image.BOX)
        if rng.random() < 0.5:
            cutout = cutout.transpose(Image.FLIP_LEFT_RIGHT)
        x = int(rng.integers(0, side - size[0] + 1))
        y = int(rng.integers(0, side - size[1] + 1))
        backdrop.paste(cutout, (x, y), cutout)
    backdrop.save(folder / f"p{index:06d}.png", compress_level=1)


_PRODUCTS: list[Image.Image] = []


def _products(side: int) -> list[Image.Image]:
    if not _PRODUCTS:
        from medgen.sources.samples import draw_sample

        rng = np.random.default_rng(0)
        for _ in range(POOL):
            layer, _ = draw_sample(rng, cutout=True)
            layer = layer.crop(layer.getbbox())
            layer.thumbnail((side, side), Image.BOX)
            _PRODUCTS.append(layer)
    return _PRODUCTS


def write_photos(folder: Path, count: int, side: int) -> None:
    folder.mkdir(parents=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_photo, [(i, side, folder) for i in range(count)], chunksize=256))


def evict(root: Path) -> int:
    """Drop every file under ``root`` from the page cache; the number of files.

    Without this a step's reads are hot or cold by accident of size: at 1,500 sources the candidates are
    still cached from generation when the export reads them, at 50,000 they are not (the export looked 5.9x
    dearer per source, all of it the disk). Dropped, every N reads cold, as a step run a day later does.
    Clean pages only: the caller flushes dirty ones first.
    """
    count = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    fd = os.open(entry.path, os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)
                    count += 1
    return count


def run(name: str, command: list[str], env: dict[str, str], cold: Path | None = None) -> Step:
    """Run one step in its own process; its wall time and peak RSS.

    Dirty pages are flushed first, so no step pays for the previous step's writes (at 50k sources the
    export leaves gigabytes to write back, and a ``status`` timed during that took 9 s instead of 0.8);
    then, with ``cold``, that folder's files leave the page cache (see ``evict``).
    """
    os.sync()
    if cold is not None:
        evict(cold)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.stderr.write(output.decode(errors="replace")[-4000:])
        raise SystemExit(f"step {name!r} failed with exit code {process.returncode}: {' '.join(command)}")
    return Step(name, seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


SIMULATE = """
import sys
from pathlib import Path
from annotation.client import connect
from annotation.simulate import simulate_annotators
from medgen.workspace import open_workspace
with open_workspace(Path(sys.argv[1])) as ws:
    made = simulate_annotators(ws, connect(ws), noise=0.1, seed=0)
print(sum(made.values()))
"""


def one_size(n: int, args: argparse.Namespace, root: Path) -> list[Step]:
    from medgen.workspace import init_workspace
    from tests.annotation.conftest import seed_labelstudio
    from tests.annotation.postgres import database

    medgen = [str(Path(sys.executable).with_name("medgen"))]
    env = {**os.environ, "COLUMNS": "120"}
    photos, ws_dir = root / "photos", root / "ws"
    started = time.perf_counter()
    write_photos(photos, n, args.resolution)
    print(f"  [{n}] {n} photos written in {time.perf_counter() - started:.0f} s (setup)", flush=True)
    steps: list[Step] = []

    def timed(name: str, command: list[str]) -> None:
        if name not in args.run:
            return
        step = run(name, command, env, cold=None if args.hot else root)
        if name not in args.steps:
            return
        steps.append(step)
        print(
            f"  [{n}] {name:<22} {step.seconds:8.1f} s {1000 * step.seconds / n:8.3f} ms/source "
            f"{step.rss_mb:7.0f} MB {1000 * step.cpu_seconds / n:8.3f} CPU ms/source",
            flush=True,
        )

    with ExitStack() as stack:
        url = stack.enter_context(database(args.postgres))
        with init_workspace(ws_dir) as ws:
            if url is None:
                seed_labelstudio(ws)
        w = ["-w", str(ws_dir)]
        timed("sources add", [*medgen, "sources", "add", str(photos), *w])
        timed(
            "generate",
            [
                *medgen,
                "generate",
                *w,
                "--backend",
                "synthetic",
                "--resolution",
                str(args.candidate_resolution),
            ],
        )
        if "push" in args.run:
            serve = [*medgen, "annotate", "serve", *w] + (["--database", url] if url else [])
            subprocess.run(serve, env=env, check=True, stdout=subprocess.DEVNULL, timeout=1800)
            stack.callback(
                subprocess.run,
                [*medgen, "annotate", "serve", "--stop", *w],
                env=env,
                stdout=subprocess.DEVNULL,
            )
        timed(
            "push",
            [*medgen, "annotate", "push", *w, "--annotators", ANNOTATORS, "--gold-rate", str(GOLD_RATE)],
        )
        timed("simulated annotation", [sys.executable, "-c", SIMULATE, str(ws_dir)])
        timed("pull", [*medgen, "annotate", "pull", *w])
        timed("agreement", [*medgen, "annotate", "agreement", *w, "--no-adjudicate", "--min-annotators", "1"])
        timed(
            "export",
            [
                *medgen,
                "export",
                *w,
                "--version",
                "v1",
                "--labels",
                "injected" if args.no_annotation else "consensus",
                "--min-annotators",
                "1",
                "--simulated-annotators",
            ],
        )
        timed("status", [*medgen, "status", *w])
        counts = json.loads(
            subprocess.run([*medgen, "status", "--json", *w], env=env, capture_output=True, check=True).stdout
        )
        print(f"  [{n}] counts: " + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "workspace"))
        if counts["sources"] < 0.9 * n:
            raise SystemExit(f"only {counts['sources']} of {n} photos became sources")
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[1500, 15000, 50000])
    parser.add_argument("--resolution", type=int, default=128, help="Side of the source photos.")
    parser.add_argument(
        "--candidate-resolution",
        type=int,
        default=128,
        help="Side of the synthetic candidates: small (the synthetic backend's least), as the bars are about "
        "cost per source, not pixels; 512 (generation's default) makes export disk-bound past a few thousand.",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="Label Studio on a throw-away PostgreSQL instead of SQLite."
    )
    parser.add_argument(
        "--tmp", type=Path, default=None, help="Folder for the workspaces (default: $TMPDIR)."
    )
    parser.add_argument(
        "--no-annotation",
        action="store_true",
        help="Leave out simulated annotation, pull and agreement (export the injected labels): the steps that "
        "need no people, for sizes where simulating them through Label Studio's API takes hours.",
    )
    parser.add_argument(
        "--hot",
        action="store_true",
        help="Leave the workspace's files in the page cache between steps (default: each timed step starts "
        "with them dropped, so every N reads from disk, as a step run a day later does).",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="Keep the largest N's folder (photos and workspace; Label Studio stopped) for further runs, "
        "such as benchmarks/cold_ab.py.",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=STEPS,
        metavar="STEP",
        default=list(STEPS),
        help="Time only these steps (the steps before the last of them still run, untimed; none after it): "
        + ", ".join(repr(step) for step in STEPS),
    )
    args = parser.parse_args()
    skipped = {"simulated annotation", "pull", "agreement"} if args.no_annotation else set()
    last = max(STEPS.index(step) for step in args.steps)
    args.run = [step for step in STEPS[: last + 1] if step not in skipped]
    args.steps = [step for step in args.run if step in args.steps]
    results: dict[int, list[Step]] = {}
    backend = "postgresql" if args.postgres else "sqlite"
    for n in sorted(args.sources):
        root = Path(tempfile.mkdtemp(prefix=f"medgen-scale-{n}-", dir=args.tmp))
        print(
            f"N = {n} sources ({args.resolution}px) x 4 candidates ({args.candidate_resolution}px), "
            f"Label Studio on {backend}",
            flush=True,
        )
        try:
            results[n] = one_size(n, args, root)
        except BaseException:
            log = root / "ws" / "labelstudio" / "server.log"
            if log.is_file():  # the workspace goes; Label Studio's side of a failed step stays readable
                kept = Path(tempfile.gettempdir()) / f"medgen-scale-{n}-labelstudio.log"
                shutil.copyfile(log, kept)
                print(f"Label Studio's log: {kept}", flush=True)
            raise
        finally:
            if args.keep and n == max(args.sources):
                print(f"  [{n}] kept: {root} (the workspace is {root / 'ws'})", flush=True)
            else:
                shutil.rmtree(root, ignore_errors=True)
    sizes = sorted(results)
    print(f"\nscale ({backend}, candidates {args.candidate_resolution}px): ms per source | peak RSS MB")
    print(
        f"{'step':<22}"
        + "".join(f"{n:>22,}" for n in sizes)
        + ("   cost ratio  RSS ratio  marginal ms/source  CPU ratio" if len(sizes) > 1 else "")
    )
    failed = []
    for i, name in enumerate(args.steps):
        row = f"{name:<22}"
        for n in sizes:
            step = results[n][i]
            row += f"{1000 * step.seconds / n:>12.3f} | {step.rss_mb:>7.0f}"
        if len(sizes) > 1:
            small, large = results[sizes[0]][i], results[sizes[-1]][i]
            cost = (large.seconds / sizes[-1]) / (small.seconds / sizes[0])
            rss = large.rss_mb / small.rss_mb
            verdict = [] if name == "status" else ([f"cost {cost:.2f}"] if cost > BAR_RATIO else [])
            verdict += [f"RSS {rss:.2f}"] if rss > BAR_RATIO else []
            failed += [f"{name}: {', '.join(verdict)}"] if verdict else []
            # What each source beyond the smallest N cost: fixed start-up costs (projects, logins, imports)
            # flatter the per-source ratio, this does not.
            marginal = 1000 * (large.seconds - small.seconds) / (sizes[-1] - sizes[0])
            # CPU per source (the step's own process): what the code costs, apart from waits on the disk.
            cpu = (large.cpu_seconds / sizes[-1]) / max(small.cpu_seconds / sizes[0], 1e-9)
            row += f"{cost:>13.2f}{rss:>11.2f}{marginal:>20.3f}{cpu:>11.2f}"
        print(row)
    if "status" in args.steps:
        status = results[sizes[-1]][args.steps.index("status")].seconds
        print(
            f"status at {sizes[-1]:,} sources: {status:.2f} s (bar < {STATUS_BAR_S:.0f} s "
            f"{'PASS' if status < STATUS_BAR_S else 'FAIL'})"
        )
    if len(sizes) > 1:
        print(
            "bars (cost per source and peak RSS at most 1.3x the smallest N): "
            + ("PASS" if not failed else "FAIL: " + "; ".join(failed))
        )


if __name__ == "__main__":
    main()
