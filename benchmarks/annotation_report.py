"""The annotation quality report on 1,500 and 50,000 tasks x 3 annotators (bars: under 20 s at 50,000; peak RSS
flat from 1,500 to 50,000 within 1.3x).

Setup (not timed): a catalog filled as pulls would leave it (``fill_catalog``): three annotator queues with
overlap 3, every task answered by each person from a known truth with their own error rate (one of them
drifting: more errors in the later half), lead times, skips, 5 % gold (sources with injected defects), a
screener's pre-fill on a third of the sources and reviewed answers. Timed: ``medgen annotate report`` in a
fresh process per size (``index.html`` + ``report.json``, plots included); its peak RSS from the kernel.

    PYTHONPATH=. .venv/bin/python benchmarks/annotation_report.py [--sizes 1500,50000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from annotation.consensus import labels_to_json
from annotation.prefill import known_labels
from annotation.tables import (
    add_queue,
    add_reviews,
    begin_pull,
    record_tasks,
    save_annotations,
    save_prefills,
)
from medgen.workspace import Workspace, init_workspace
from medgen.workspace.catalog import now
from schemas import LETTERS, CandidateLabel, SourceImage
from tests.annotation.conftest import add_sources

ANNOTATORS = {"ann1": 0.05, "ann2": 0.12, "ann3": 0.08}
"""Each simulated person's error rate per candidate (ann3's doubles in the later half: drift)."""
TAGS = ("product_warped", "color_shifted", "shadow_missing", "floating", "scale_wrong", "visible_seam")
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _truth(rng: random.Random) -> tuple[CandidateLabel, ...]:
    return tuple(
        CandidateLabel(acceptable=True)
        if rng.random() < 0.6
        else CandidateLabel(defects=(rng.choice(TAGS),), acceptable=False)
        for _ in LETTERS
    )


def _noisy(truth: tuple[CandidateLabel, ...], rate: float, rng: random.Random) -> tuple[CandidateLabel, ...]:
    out = []
    for label in truth:
        if rng.random() >= rate:
            out.append(label)
        elif label.acceptable:
            out.append(CandidateLabel(defects=(rng.choice(TAGS),), acceptable=False))
        else:
            out.append(
                CandidateLabel(acceptable=True)
                if rng.random() < 0.5
                else CandidateLabel(defects=(rng.choice(TAGS),), acceptable=False)
            )
    return tuple(out)


def fill_catalog(ws: Workspace, tasks: int, seed: int = 0, gold_share: float = 0.05) -> None:
    """``tasks`` sources x 3 annotators, as pulls would leave the catalog (module docstring)."""
    rng = random.Random(seed)
    gold = set(add_sources(ws, max(1, int(tasks * gold_share))))
    sources = sorted(gold) + [f"s{i:07d}" for i in range(tasks - len(gold))]
    for source in sources[len(gold) :]:  # rows only: the report reads no image
        ws.catalog.add_source(
            SourceImage(
                id=source,
                original_name=f"{source}.png",
                image_key=f"images/{source}.png",
                mask_key=f"masks/{source}.png",
                width=24,
                height=24,
                phash="0" * 16,
                mask_from_alpha=False,
                added_at=START,
            )
        )
    truths = {s: known_labels(ws.catalog.candidates(s)) for s in gold}
    projects = {name: 100 + i for i, name in enumerate(ANNOTATORS)}
    for name, project in projects.items():
        add_queue(ws, project, "annotator", name, f"medgen bench {name}")
    begin_pull(ws)
    task_id = annotation_id = 0
    prefills, reviews = [], []
    for start in range(0, len(sources), 5000):
        task_rows, answers = [], []
        for k, source in enumerate(sources[start : start + 5000], start=start):
            truth = truths.get(source) or _truth(rng)
            if rng.random() < 1 / 3:
                prefills.append((source, "bench-screener", 0.8, labels_to_json(_noisy(truth, 0.15, rng))))
            for name, rate in ANNOTATORS.items():
                task_id += 1
                annotation_id += 1
                task_rows.append((task_id, projects[name], source, name, int(source in gold)))
                late = k > len(sources) / 2
                skipped = rng.random() < 0.02
                labels = _noisy(truth, rate * (2 if late and name == "ann3" else 1), rng)
                when = (START + timedelta(days=20 * k / len(sources), seconds=rng.random() * 600)).isoformat()
                answers.append(
                    (
                        annotation_id,
                        task_id,
                        projects[name],
                        name,
                        source,
                        "cancelled" if skipped else "valid",
                        "[]",
                        labels_to_json(labels),
                        rng.lognormvariate(3.0 + 0.2 * list(ANNOTATORS).index(name), 0.5),
                        when,
                        when,
                        now(),
                        None,
                    )
                )
                if rng.random() < 0.02:
                    decision = "accepted" if rng.random() < 1 - rate * 3 else "rejected"
                    reviews.append(
                        (
                            (
                                annotation_id,
                                source,
                                name,
                                task_id,
                                "sample",
                                "reviewer",
                                None,
                                "",
                                None,
                                None,
                                now(),
                            ),
                            (
                                annotation_id,
                                decision,
                                "see the guideline" if decision == "rejected" else "",
                                "reviewer",
                            ),
                        )
                    )
        record_tasks(ws, task_rows)
        save_annotations(ws, answers, [], [], [])
    save_prefills(ws, prefills)
    add_reviews(ws, [r for r, _ in reviews], [d for _, d in reviews])


def timed_report(root: Path) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of `medgen annotate report` in a fresh process."""
    code = (
        "import time, resource, json, sys\n"
        "t = time.perf_counter()\n"
        "from annotation.report_page import write_report\n"
        "from medgen.workspace import open_workspace\n"
        "from pathlib import Path\n"
        f"with open_workspace(Path({str(root)!r})) as ws: write_report(ws)\n"
        "print(json.dumps([time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the report failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    seconds, rss_kib = json.loads(out.strip().splitlines()[-1])
    return seconds, rss_kib * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1500,50000", help="tasks per run, comma-separated")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            ws = init_workspace(Path(tmp) / f"ws{size}")
            started = time.perf_counter()
            fill_catalog(ws, size)
            setup = time.perf_counter() - started
            ws.close()
            seconds, rss = timed_report(ws.root)
            html = (ws.root / "reports" / "annotation" / "index.html").stat().st_size
            results[size] = (seconds, rss)
            print(
                f"{size:>6} tasks x 3: report {seconds:.1f} s, peak RSS {rss / 2**20:.0f} MiB, "
                f"page {html / 1024:.0f} KiB (setup {setup:.0f} s)"
            )
    low, high = min(sizes), max(sizes)
    print(
        f"ratio of peak RSS {high} / {low} tasks: {results[high][1] / results[low][1]:.2f} (bar 1.3); "
        f"{high} tasks in {results[high][0]:.1f} s (bar 20)"
    )


if __name__ == "__main__":
    main()
