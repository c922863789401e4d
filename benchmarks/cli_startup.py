"""`medgen --help` now against a base revision, in one run (bar: ratio <= 1.0 within noise).

The base revision is checked out into a temporary git worktree and run with this checkout's virtual
environment (``PYTHONPATH`` points at it); runs alternate between the two, so drift on a shared machine
falls on both. Prints the median wall time of each and their ratio.

    .venv/bin/python benchmarks/cli_startup.py [--base REV] [--runs 15] [--command "--help"]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = "eaee15d"
"""The last commit before the architecture step (issue: one inference layer, options declared once...)."""


def _time(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "medgen.cli", *args], cwd=tree, env=env, capture_output=True, check=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE, help="Git revision to compare with.")
    parser.add_argument("--runs", type=int, default=15, help="Runs of each.")
    parser.add_argument("--command", default="--help", help="Arguments to time (quoted).")
    options = parser.parse_args()
    args = options.command.split()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), options.base], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            for tree in (ROOT, base):  # warm the file cache and bytecode once each
                _time(tree, args)
            now, before = [], []
            for i in range(options.runs):
                for tree, times in (
                    ((ROOT, now), (base, before)) if i % 2 == 0 else ((base, before), (ROOT, now))
                ):
                    times.append(_time(tree, args))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    current, previous = statistics.median(now), statistics.median(before)
    print(
        f"cli_startup: `medgen {options.command}` median {1000 * current:.0f} ms now, {1000 * previous:.0f} ms at "
        f"{options.base} ({options.runs} runs each, alternating); ratio {current / previous:.3f}"
    )


if __name__ == "__main__":
    main()
