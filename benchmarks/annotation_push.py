"""Bulk push of 1,500 tasks to a real Label Studio (bar: <= 30 s).

Baseline, same run: one bare SDK ``import_tasks`` of the same 1,500 task payloads into a fresh
project (no catalog, no planning, no batching). Prints one line with both times and the ratio.

    .venv/bin/python benchmarks/annotation_push.py [--tasks 1500] [--postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from annotation.client import connect
from annotation.config import labeling_config
from annotation.push import PushConfig, _task_payload, push
from annotation.server import serve, stop
from medgen.workspace import init_workspace
from tests.annotation.conftest import add_sources, seed_labelstudio
from tests.annotation.postgres import database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument(
        "--postgres", action="store_true", help="Label Studio on a throw-away PostgreSQL instead of SQLite."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres) as url:
        ws = init_workspace(Path(tmp) / "ws")
        if url is None:
            seed_labelstudio(ws)  # a migrated SQLite data dir; PostgreSQL migrates at its first start
        sources = add_sources(ws, args.tasks)
        serve(ws, database=url, timeout=900)
        try:
            connection = connect(ws)
            payload = [_task_payload(connection, ws, s, ws.catalog.candidates(s), None) for s in sources]
            bare_project = connection.client.projects.create(
                title="bare baseline", label_config=labeling_config()
            )
            start = time.perf_counter()
            connection.client.projects.import_tasks(bare_project.id, request=payload, return_task_ids=True)
            bare = time.perf_counter() - start

            start = time.perf_counter()
            report = push(ws, connection, PushConfig())
            medgen = time.perf_counter() - start
            assert sum(report.imported.values()) == args.tasks
        finally:
            stop(ws)
            ws.close()
    verdict = "PASS" if medgen <= 30 else "FAIL"
    print(
        f"annotation_push ({'postgresql' if args.postgres else 'sqlite'}): {args.tasks} tasks in {medgen:.2f} s ({args.tasks / medgen:.0f} tasks/s; bar 30 s {verdict}); "
        f"bare SDK import {bare:.2f} s; ratio {medgen / bare:.2f}"
    )


if __name__ == "__main__":
    main()
