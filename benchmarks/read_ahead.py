"""Read-ahead on a cold disk: `medgen export` of one workspace with and without ``medgen.files.read_ahead``.

The export reads five image files per source. On this machine's virtual disk a cold read takes ~6-10 ms
one at a time, while several in flight are served about as fast each; ``read_ahead`` asks for the next
64 sources' files from 8 threads while one source is written. This times the same export of the same
workspace both ways, in alternating order, each from a cold page cache (``scale.evict``), and prints the
wall time, the CPU time and the ratio. The workspace should be too large for the host's cache (at 1,500
sources of 128 px the reads come from it even after the guest's cache is dropped): make one with

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --sources 50000 --no-annotation --steps generate --keep
    PYTHONPATH=. .venv/bin/python benchmarks/read_ahead.py /tmp/medgen-scale-50000-XXXX/ws [--rounds 1]

Each export is written and then removed (a 50k-source export of 128 px candidates is ~7 GB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from benchmarks.scale import run

EXPORT = """
import sys
from pathlib import Path
import medgen.export.dataset as dataset
from medgen.cli import app
if sys.argv[1] == "off":
    dataset.read_ahead = lambda items, paths, **_: iter(items)
sys.argv = ["medgen", "export", "-w", sys.argv[2], "--version", sys.argv[3], "--labels", "injected",
            "--min-annotators", "1", "--simulated-annotators"]
app()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument(
        "--rounds", type=int, default=1, help="Pairs of exports (off then on, on then off...)."
    )
    args = parser.parse_args()
    from medgen.workspace import open_workspace

    with open_workspace(args.workspace) as ws:
        sources = ws.counts()["sources"]
    env = {**os.environ, "COLUMNS": "120"}
    times: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for round_ in range(args.rounds):
        for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            version = f"read-ahead-{mode}-{round_}"
            step = run(
                version,
                [sys.executable, "-c", EXPORT, mode, str(args.workspace), version],
                env,
                args.workspace,
            )
            times[mode].append((step.seconds, step.cpu_seconds))
            print(
                f"read-ahead {mode:<3}: {step.seconds:7.1f} s  {1000 * step.seconds / sources:6.2f} ms/source  "
                f"CPU {1000 * step.cpu_seconds / sources:5.2f} ms/source  {step.rss_mb:4.0f} MB",
                flush=True,
            )
            shutil.rmtree(args.workspace / "exports" / version, ignore_errors=True)
    off = sum(t for t, _ in times["off"])
    on = sum(t for t, _ in times["on"])
    print(f"{sources} sources: export wall time with read-ahead / without: {on / off:.2f}")


if __name__ == "__main__":
    main()
