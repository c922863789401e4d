"""The review loop against a real Label Studio: a rejected answer goes back to its author with the comment, is
answered again, and the export takes the new answer; gold misses come back with the expected answer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from annotation.client import connect
from annotation.config import label_result
from annotation.server import load_credentials, stop
from medgen.cli import app
from medgen.workspace import Workspace, init_workspace
from schemas import CandidateLabel
from tests.annotation.conftest import add_sources
from tests.annotation.test_team import login

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

OK = CandidateLabel(acceptable=True)
WARPED = CandidateLabel(defects=("product_warped",), acceptable=False)


def decision(choice: str, comment: str = "") -> list[dict[str, object]]:
    """A reviewer's answer as the review page writes it."""
    result: list[dict[str, object]] = [
        {"from_name": "decision", "to_name": "original", "type": "choices", "value": {"choices": [choice]}}
    ]
    if comment:
        result.append(
            {"from_name": "comment", "to_name": "original", "type": "textarea", "value": {"text": [comment]}}
        )
    return result


def review(runner, ws: Workspace, *extra: str) -> str:
    result = runner.invoke(app, ["annotate", "review", "-w", str(ws.root), "--share", "0", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def review_tasks(ws: Workspace) -> dict[int, int]:
    """Reviewed annotation id -> its review task id."""
    rows = ws.catalog.query(
        "SELECT ls_annotation_id, review_task_id FROM reviews WHERE review_task_id IS NOT NULL"
    )
    return {int(r[0]): int(r[1]) for r in rows}


def round_trip(ws: Workspace, runner, tmp_path: Path) -> None:
    """ann1 answers; the reviewer rejects their first answer with a comment; it comes back; ann1 answers again;
    the reviewer accepts; the export with --require-review holds the new answer."""
    sources = add_sources(ws, 3, known=False)
    pushed = runner.invoke(app, ["annotate", "push", "-w", str(ws.root), "--annotators", "ann1"])
    assert pushed.exit_code == 0, pushed.output
    connection = connect(ws)
    creds = load_credentials(ws)
    ann1 = connection.with_token(creds.accounts["ann1"].token)
    tasks = {r[1]: int(r[0]) for r in ws.catalog.query("SELECT ls_task_id, source_id FROM tasks ORDER BY 1")}
    first = ann1.client.annotations.create(tasks[sources[0]], result=label_result([OK] * 4))
    for source in sources[1:]:
        ann1.client.annotations.create(tasks[source], result=label_result([OK] * 4))

    out = review(runner, ws, "--first", "1")
    assert "one of the annotator's first tasks 1" in out and "review tasks pushed: 1" in out, out
    creds = load_credentials(ws)
    assert "reviewer" in creds.accounts
    assert review_tasks(ws).keys() == {first.id}
    reviewer = connection.with_token(creds.accounts["reviewer"].token)
    task = reviewer.client.tasks.get(review_tasks(ws)[first.id])
    assert task.data["answer_A"] == "ann1 said: No defects" and "first tasks" in task.data["heading"]

    # The reviewer sees their queue only, and may not change it; ann1 cannot reach it at all.
    session = login(connection.url, creds.accounts["reviewer"].email, creds.accounts["reviewer"].password)
    review_project = int(
        ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE kind = 'review'")[0][0]
    )
    assert [p["id"] for p in session.get("/api/projects/").json()["results"]] == [review_project]
    assert session.patch(f"/api/projects/{review_project}/", json={"title": "mine"}).status_code == 403
    assert session.delete(f"/api/projects/{review_project}/").status_code == 403
    ann1_session = login(connection.url, creds.accounts["ann1"].email, creds.accounts["ann1"].password)
    assert ann1_session.get(f"/api/projects/{review_project}/").status_code in (403, 404)
    ann1_project = int(
        ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE annotator = 'ann1'")[0][0]
    )
    assert session.get(f"/api/projects/{ann1_project}/").status_code in (403, 404)
    assert session.get(f"/api/tasks/{tasks[sources[0]]}/").status_code in (403, 404)
    status = runner.invoke(app, ["annotate", "status", "-w", str(ws.root)])
    assert status.exit_code == 0 and "reviewer" in status.output, status.output

    comment = "B's cap is bent: tag it as warped"
    reviewer.client.annotations.create(task.id, result=decision("reject", comment))
    out = review(runner, ws, "--first", "1")
    assert "1 rejected" in out and "returned to their authors with the comment: 1" in out, out
    row = ws.catalog.query("SELECT * FROM annotations WHERE ls_annotation_id = ?", (first.id,))[0]
    assert row["status"] == "rejected" and comment in row["reasons"]
    assert ws.catalog.count("annotation_history", "ls_annotation_id = ?", (first.id,)) == 1
    # It came back as a new task at the end of ann1's queue, without the answer; the old task is gone.
    back = int(ws.catalog.query("SELECT ls_task_id FROM tasks WHERE source_id = ?", (sources[0],))[0][0])
    assert back > max(tasks.values())
    with pytest.raises(Exception, match="404"):
        connection.queue("ann1").client.tasks.get(tasks[sources[0]])
    returned = connection.queue("ann1").client.tasks.get(back)
    assert not returned.annotations and comment in returned.data["review_note"]
    shown = [[(r["from_name"], r["value"]) for r in p.result] for p in returned.predictions]
    assert shown == [[(r["from_name"], r["value"]) for r in label_result([OK] * 4)]]
    nxt = ann1_session.get(
        f"/api/projects/{ws.catalog.query('SELECT ls_project_id FROM tasks LIMIT 1')[0][0]}/next"
    )
    assert nxt.status_code == 200 and nxt.json()["id"] == back  # the only task left in ann1's stream

    again = ann1.client.annotations.create(back, result=label_result([OK, WARPED, OK, OK]))
    out = review(runner, ws, "--first", "1")
    assert "a new answer on a task that came back 1" in out, out
    reviewer.client.annotations.create(review_tasks(ws)[again.id], result=decision("accept"))
    out = review(runner, ws, "--first", "1")
    assert "1 accepted" in out, out
    exported = runner.invoke(
        app,
        [
            "export",
            "-w",
            str(ws.root),
            "--version",
            "v1",
            "--require-review",
            "--min-annotators",
            "1",
            "--split",
            "1,0,0",
        ],
    )
    assert exported.exit_code == 0, exported.output
    path = Path(ws.catalog.query("SELECT path FROM exports WHERE version = 'v1'")[0][0])
    import pyarrow.parquet as pq

    rows = [r for f in sorted(path.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert {r["source_id"] for r in rows} == {sources[0]}  # the others were never accepted
    labels = json.dumps(rows, default=str)
    assert "product_warped" in labels  # the new answer, not the rejected one
    assert creds.accounts["reviewer"].password not in labels
    reported = runner.invoke(app, ["annotate", "report", "-w", str(ws.root)])
    assert reported.exit_code == 0, reported.output
    numbers = json.loads((ws.root / "reports" / "annotation" / "report.json").read_text())
    person = numbers["annotators"]["ann1"]
    assert person["review"] == {"accepted": 1, "rejected": 1, "waiting": 0, "acceptance": 0.5}
    assert person["rejected"] == 1 and person["valid"] == 3


def test_a_rejected_answer_returns_to_its_author_and_the_export_takes_the_new_one(
    team_workspace, runner, tmp_path
):
    round_trip(team_workspace, runner, tmp_path)


def test_the_same_round_trip_on_postgresql(ls_root, runner, tmp_path) -> None:
    from tests.annotation.postgres import postgres_server

    with postgres_server() as url:
        ws = init_workspace(ls_root / f"review-pg-{os.urandom(3).hex()}")
        try:
            served = runner.invoke(
                app, ["annotate", "serve", "-w", str(ws.root)], env={"MEDGEN_LS_DATABASE": url}
            )
            assert served.exit_code == 0, served.output
            round_trip(ws, runner, tmp_path)
        finally:
            stop(ws)
            ws.close()


def test_a_gold_miss_comes_back_with_the_expected_answer(team_workspace, runner) -> None:
    ws = team_workspace
    add_sources(ws, 4)  # known labels: every task can be gold
    pushed = runner.invoke(
        app, ["annotate", "push", "-w", str(ws.root), "--annotators", "ann1,ann2", "--gold-rate", "0.5"]
    )
    assert pushed.exit_code == 0, pushed.output
    connection = connect(ws)
    creds = load_credentials(ws)
    gold = {
        r[0]: r[1]
        for r in ws.catalog.query(
            "SELECT ls_task_id, source_id FROM tasks WHERE annotator = 'ann1' AND is_gold = 1"
        )
    }
    assert len(gold) == 2  # half of the four sources, sent to both annotators
    ann1 = connection.with_token(creds.accounts["ann1"].token)
    from annotation.prefill import known_labels

    hit_task, miss_task = sorted(gold)
    truth = {t: known_labels(ws.catalog.candidates(s)) for t, s in gold.items()}
    ann1.client.annotations.create(hit_task, result=label_result(list(truth[hit_task])))
    wrong = [OK] * 4 if truth[miss_task] != (OK,) * 4 else [WARPED] * 4
    ann1.client.annotations.create(miss_task, result=label_result(wrong))
    out = review(runner, ws, "--first", "0")
    assert "gold check: 1 a gold task answered as known" in out, out
    assert "gold check: 1 a gold task answered unlike its known answer" in out, out
    miss_task = int(
        ws.catalog.query(
            "SELECT ls_task_id FROM tasks WHERE source_id = ? AND annotator = 'ann1'", (gold[miss_task],)
        )[0][0]
    )
    returned = connection.queue("ann1").client.tasks.get(miss_task)
    note = returned.data["review_note"]
    assert "gold check" in note and "Expected: A:" in note and not returned.annotations
    # The second miss on the same task goes to the reviewer, with the known answer in the heading.
    again = ann1.client.annotations.create(miss_task, result=label_result(wrong))
    out = review(runner, ws, "--first", "0")
    assert "a gold task missed again after it came back 1" in out, out
    heading = connect(ws).queue("reviewer").client.tasks.get(review_tasks(ws)[again.id]).data["heading"]
    assert "known answer" in heading


def test_a_review_round_cut_short_resumes_without_duplicates(team_workspace, runner, monkeypatch) -> None:
    """A crash after Label Studio imported the review tasks, or the returned tasks, but before the catalog
    recorded them: the next round finds them on the server instead of importing them again."""
    import annotation.review as review_module

    ws = team_workspace
    sources = add_sources(ws, 2, known=False)
    assert runner.invoke(app, ["annotate", "push", "-w", str(ws.root), "--annotators", "ann1"]).exit_code == 0
    connection = connect(ws)
    creds = load_credentials(ws)
    ann1 = connection.with_token(creds.accounts["ann1"].token)
    tasks = {r[1]: int(r[0]) for r in ws.catalog.query("SELECT ls_task_id, source_id FROM tasks")}
    answers = [ann1.client.annotations.create(tasks[s], result=label_result([OK] * 4)) for s in sources]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(review_module, "record_review_tasks", crash)
    with pytest.raises(KeyboardInterrupt):
        review_module.review(ws, connect(ws), review_module.ReviewConfig(first=2, share=0.0))
    monkeypatch.undo()
    out = review(runner, ws, "--first", "2")
    assert "review tasks pushed: 0" in out, out  # both found on the server, none imported twice
    reviewer = connect(ws).queue("reviewer")
    project = int(ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE kind = 'review'")[0][0])
    assert reviewer.client.projects.get(project).task_number == 2 and len(review_tasks(ws)) == 2

    as_reviewer = connection.with_token(load_credentials(ws).accounts["reviewer"].token)
    for answer in answers:
        as_reviewer.client.annotations.create(
            review_tasks(ws)[answer.id], result=decision("reject", "look again")
        )
    monkeypatch.setattr(review_module, "move_returned_tasks", crash)
    with pytest.raises(KeyboardInterrupt):
        review_module.review(ws, connect(ws), review_module.ReviewConfig(first=2, share=0.0))
    monkeypatch.undo()
    out = review(runner, ws, "--first", "2")
    assert "returned to their authors with the comment: 2" in out, out
    queue = connect(ws).queue("ann1")
    ann1_project = int(
        ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE annotator = 'ann1'")[0][0]
    )
    on_server = list(queue.client.tasks.list(project=ann1_project, fields="all"))
    assert len(on_server) == 2 and all("look again" in t.data["review_note"] for t in on_server)
    assert {t.id for t in on_server} == {int(r[0]) for r in ws.catalog.query("SELECT ls_task_id FROM tasks")}
