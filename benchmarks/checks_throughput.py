"""`medgen check` speed and memory on 2 cores at 1024 x 1024, through the workspace path users run.

A workspace of ``--sources`` originals at 1024 px (long side), each with four 1024 px candidates of the
evaluation set (``checks_evalset.py``: a third untouched, the rest perturbed), stored as PNG like generated
candidates (recipe ``background``). Each measured run is its own process (peak RSS = its ``ru_maxrss``):

    all checks but OCR   ``check_workspace`` over every candidate: decode, locate, measure, store in the
                         catalog (the outputs are timed apart: ``checks.jsonl``, ``.csv``, the sheet)
    OCR alone            the same on a subset with OCR on, less the time without: OCR's own rate
    memory               peak RSS checking N/4 sources vs all N (bar: within 1.3x)

    PYTHONPATH=. .venv/bin/python benchmarks/checks_throughput.py [--sources 100] [--ocr-sources 10]

Bar (issue 33): at least 20 candidates/s for all checks but OCR; OCR's rate reported; memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(root: Path, sources: int, seed: int = 0) -> None:
    """The workspace: 1024 px originals added as files, four evaluation-set candidates each, stored."""
    from benchmarks.checks_evalset import TAGS, add_to_workspace
    from medgen.workspace import init_workspace

    rng = np.random.default_rng(seed)
    tags = [
        [None if rng.random() < 0.34 else TAGS[int(rng.integers(len(TAGS)))] for _ in range(4)]
        for _ in range(sources)
    ]
    workspace = init_workspace(root / "workspace")
    add_to_workspace(workspace, tags, seed=seed, size=1024)
    workspace.close()


def measure_run(root: Path, sources: int | None, ocr: bool, outputs: bool = False) -> dict[str, float]:
    """One `check_workspace` run in a child process: candidates, seconds, peak RSS."""
    code = f"""
import json, resource, time, sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from medgen.checks.check import check_workspace
from medgen.checks.config import CheckConfig
from medgen.workspace import open_workspace
with open_workspace(Path({str(root / "workspace")!r})) as ws:
    ids = [s.id for s in ws.catalog.sources()][: {sources!r}]
    config = CheckConfig(ocr={ocr!r})
    started = time.perf_counter()
    report = check_workspace(ws, config, ids, force=True)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    if {outputs!r}:
        from medgen.checks.check import write_outputs
        from medgen.checks.tables import stored
        records = stored(ws, [c.id for c in ws.catalog.candidates()], config.digest())
        write_outputs(list(records.values()), config.model_copy(update={{"output_dir": Path({str(root / "out")!r})}}))
    outputs = time.perf_counter() - started
print(json.dumps({{"candidates": report.checked, "seconds": seconds, "outputs_s": outputs,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the measured run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100, help="originals, 4 candidates each")
    parser.add_argument("--ocr-sources", type=int, default=10, help="sources of the OCR run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medgen-checks-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        build(root, args.sources)
        print(
            f"workspace of {args.sources} sources x 4 candidates at 1024 px built in {time.perf_counter() - started:.0f} s"
        )
        small = measure_run(root, max(1, args.sources // 4), ocr=False)
        full = measure_run(root, None, ocr=False, outputs=True)
        rate = full["candidates"] / full["seconds"]
        print(
            f"all checks but OCR: {full['candidates']} candidates in {full['seconds']:.1f} s = {rate:.1f} candidates/s"
            f" ({'PASS' if rate >= 20 else 'FAIL'}, bar 20)"
        )
        print(
            f"outputs (checks.jsonl, checks.csv, index.html with thumbnails) of all {full['candidates']}: "
            f"{full['outputs_s']:.1f} s"
        )
        ratio = full["rss_mb"] / small["rss_mb"]
        print(
            f"peak RSS: {small['candidates']} candidates {small['rss_mb']:.0f} MB, {full['candidates']} candidates "
            f"{full['rss_mb']:.0f} MB: ratio {ratio:.2f} ({'PASS' if ratio <= 1.3 else 'FAIL'}, bar 1.3)"
        )
        without = measure_run(root, args.ocr_sources, ocr=False)
        with_ocr = measure_run(root, args.ocr_sources, ocr=True)
        extra = with_ocr["seconds"] - without["seconds"]
        print(
            f"OCR: {with_ocr['candidates']} candidates {with_ocr['seconds']:.1f} s with, {without['seconds']:.1f} s without:"
            f" OCR alone {with_ocr['candidates'] / max(extra, 1e-9):.2f} candidates/s; all checks with OCR "
            f"{with_ocr['candidates'] / with_ocr['seconds']:.2f} candidates/s"
        )
        print(f"{os.cpu_count()} cores; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
