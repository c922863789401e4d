"""Pull + validation + agreement of 1,500 tasks x 3 annotators from a real Label Studio (bar: <= 10 s).

Setup (not timed): 1,500 sources pushed to three annotator projects (overlap 3), each task
imported together with a noisy simulated annotation. Timed: ``pull`` (for the workspace's own server,
a read-only query of Label Studio's database; then validation and catalog upsert) + ``agreement``
(alpha, gold, consensus, adjudication push). Baseline, same run: downloading the three JSON exports
(the API path, which Label Studio's serializers make slow: ~6 s per 1,500-task project).

    .venv/bin/python benchmarks/annotation_pull.py [--tasks 1500] [--postgres]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from annotation.agreement import agreement
from annotation.client import connect
from annotation.config import label_result
from annotation.pull import local_database, pull
from annotation.push import (
    ANNOTATOR,
    PushConfig,
    PushReport,
    _task_payload,
    ensure_project,
    known_labels,
    plan,
    with_accounts,
)
from annotation.server import serve, stop
from annotation.simulate import Noise, noisy_label
from medgen.workspace import init_workspace
from medgen.workspace.catalog import now
from tests.annotation.conftest import add_sources, seed_labelstudio
from tests.annotation.postgres import database

ANNOTATORS = ["ann1", "ann2", "ann3"]


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
            # As `annotate push` does: a login per annotator (and the adjudicator), each queue in its
            # own organization; the tasks then come with each annotator's answer, made as them.
            with_accounts(ws, connection, ANNOTATORS, ANNOTATOR, PushReport())
            plan(ws, PushConfig(annotators=ANNOTATORS, overlap=3, gold_rate=0.1))
            gold = {
                r["source_id"]
                for r in ws.catalog.query("SELECT DISTINCT source_id FROM task_plan WHERE is_gold = 1")
            }
            noise = Noise(missed_tag=0.05, extra_tag=0.025, flipped=0.025, skip=0.0)
            projects = []
            for name in ANNOTATORS:
                project_id, _ = ensure_project(connection, ws, ANNOTATOR, name)
                projects.append(project_id)
                rng = random.Random(name)
                payload = []
                for source_id in sources:
                    task = _task_payload(connection, ws, source_id, ws.catalog.candidates(source_id), None)
                    answers = [
                        noisy_label(label, noise, rng)
                        for label in known_labels(ws.catalog.candidates(source_id))
                    ]
                    task["annotations"] = [
                        {
                            "result": label_result(answers),
                            "lead_time": 30.0,
                            "completed_by": connection.accounts[name].user_id,
                        }
                    ]
                    payload.append(task)
                response = connection.queue(name).client.projects.import_tasks(
                    project_id, request=payload, return_task_ids=True
                )
                with ws.catalog.transaction() as conn:
                    conn.executemany(
                        "INSERT INTO tasks (ls_task_id, ls_project_id, source_id, annotator, is_gold, pushed_at) VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (t, project_id, s, name, int(s in gold), now())
                            for t, s in zip(response.task_ids, sources, strict=True)
                        ],
                    )

            start = time.perf_counter()
            for name, project_id in zip(ANNOTATORS, projects, strict=True):
                connection.queue(name).get_json(f"/api/projects/{project_id}/export", exportType="JSON")
            bare = time.perf_counter() - start

            # Exactly `medgen annotate pull` + `medgen annotate agreement` (the workspace's own server:
            # pull reads Label Studio's database instead of waiting for its export serializer).
            start = time.perf_counter()
            pulled = pull(ws, connection)
            fetched = time.perf_counter()
            report = agreement(ws, connection)
            end = time.perf_counter()
            medgen, own = end - start, end - fetched
            assert pulled.new == 3 * args.tasks and local_database(ws, connection) is not None
        finally:
            stop(ws)
            ws.close()
    verdict = "PASS" if medgen <= 10 else "FAIL"
    alpha = report.alpha["acceptable"]
    print(
        f"annotation_pull ({'postgresql' if args.postgres else 'sqlite'}): {args.tasks} tasks x 3 annotators pulled, validated and agreed in {medgen:.2f} s "
        f"(bar 10 s {verdict}), of which agreement {own:.2f} s; "
        f"bare export download {bare:.2f} s; ratio {medgen / bare:.2f} "
        f"(alpha(acceptable) {alpha:.3f}, consensus {len(report.consensus.items)}, adjudication {report.adjudication_pushed})"
    )


if __name__ == "__main__":
    main()
