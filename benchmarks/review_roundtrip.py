"""A review round trip of 1,500 answers against a real Label Studio (bar: under 30 s).

Setup (not timed): 1,500 sources in one annotator's queue, each task imported with their answer (as them), and
pulled. Timed, exactly as `medgen annotate review` does it: (1) select every answer for review and push the
reviewer's queue (their login and project made on the way); then, after the reviewer's decisions are made through
the API as the reviewer (not timed: 80 % accepted, 20 % rejected with a comment, four requests in flight), (2) the
next round: pull the answers, pull the decisions, send the 300 rejected answers back to the annotator (answer
deleted on the server, note set, answer pre-filled). The total of (1) and (2) is held to the bar.

    PYTHONPATH=. .venv/bin/python benchmarks/review_roundtrip.py [--tasks 1500] [--postgres]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from annotation.client import connect
from annotation.config import label_result
from annotation.options import ReviewConfig
from annotation.pull import pull
from annotation.push import ANNOTATOR, PushReport, _task_payload, ensure_project, known_labels, with_accounts
from annotation.review import ReviewReport, push_reviews, review, select
from annotation.server import serve, stop
from annotation.simulate import WORKERS, send
from annotation.tables import record_tasks
from tests.annotation.conftest import add_sources, seed_labelstudio
from tests.annotation.postgres import database
from tests.annotation.test_review import decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--postgres", action="store_true", help="Label Studio on a throw-away PostgreSQL.")
    args = parser.parse_args()
    config = ReviewConfig(first=args.tasks, share=0.0)
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres) as url:
        from medgen.workspace import init_workspace

        ws = init_workspace(Path(tmp) / "ws")
        if url is None:
            seed_labelstudio(ws)
        sources = add_sources(ws, args.tasks)
        serve(ws, database=url, timeout=900)
        try:
            connection = with_accounts(ws, connect(ws), ["ann1"], ANNOTATOR, PushReport())
            project_id, _ = ensure_project(connection, ws, ANNOTATOR, "ann1")
            candidates = ws.catalog.candidates_by_source(sources)
            payload = []
            for source in sources:
                task = _task_payload(connection.queue("ann1"), ws, source, candidates[source], None)
                labels = known_labels(candidates[source])
                answer = {"result": label_result(list(labels)), "lead_time": 20.0}
                task["annotations"] = [answer | {"completed_by": connection.accounts["ann1"].user_id}]
                payload.append(task)
            response = connection.queue("ann1").client.projects.import_tasks(
                project_id, request=payload, return_task_ids=True
            )
            record_tasks(
                ws, [(t, project_id, s, "ann1", 0) for t, s in zip(response.task_ids, sources, strict=True)]
            )
            assert pull(ws, connection).new == args.tasks

            start = time.perf_counter()
            report = ReviewReport()
            select(ws, config, report)
            connection = push_reviews(ws, connection, config, report)
            pushed = time.perf_counter() - start
            assert report.pushed == args.tasks, report

            rng = random.Random(0)
            reviewer = connection.with_token(connection.accounts[config.reviewer].token)
            rows = ws.catalog.query("SELECT review_task_id FROM reviews ORDER BY ls_annotation_id")
            answers = [
                (
                    int(r[0]),
                    {
                        "result": decision("reject", "see the guideline")
                        if rng.random() < 0.2
                        else decision("accept")
                    },
                )
                for r in rows
            ]
            made = time.perf_counter()
            with ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(lambda a: send(reviewer, a[0], a[1], config.reviewer), answers))
            decided = time.perf_counter() - made
            rejected = sum(a[1]["result"][0]["value"]["choices"] == ["reject"] for a in answers)  # type: ignore[index]

            start = time.perf_counter()
            second = review(ws, connect(ws), config)
            returned = time.perf_counter() - start
            assert second.returned == rejected and sum(second.decided.values()) == args.tasks, second
        finally:
            stop(ws)
            ws.close()
    total = pushed + returned
    print(
        f"review_roundtrip ({'postgresql' if args.postgres else 'sqlite'}): {args.tasks} answers: review queue pushed in "
        f"{pushed:.1f} s; pull + decisions + {rejected} returned in {returned:.1f} s; total {total:.1f} s "
        f"(bar 30 s {'PASS' if total < 30 else 'FAIL'}); the reviewer's {args.tasks} decisions took {decided:.1f} s "
        "through the API (not timed)"
    )


if __name__ == "__main__":
    main()
