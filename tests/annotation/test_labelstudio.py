"""Round trips against a real Label Studio on loopback: push, simulate, pull, validate, agree, adjudicate."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
from typer.testing import CliRunner

from annotation.agreement import agreement
from annotation.config import controls, label_result, labeling_config
from annotation.consensus import consensus_labels
from annotation.prefill import SIMULATED_MODEL, simulated_prefill
from annotation.pull import fetch_project, project_status, pull, read_export_file
from annotation.push import ADJUDICATOR, PushConfig, known_labels, push
from annotation.simulate import MARK, simulate_annotators
from annotation.validation import CANCELLED, CONTRADICTORY, INCOMPLETE, INVALID, VALID, parse_export
from medgen.cli import app
from medgen.errors import MedgenError
from schemas import CandidateLabel
from tests.annotation.conftest import add_sources

pytestmark = pytest.mark.labelstudio

OK = CandidateLabel(acceptable=True)


def _project_tasks(connection, project_id: int) -> list:
    return list(connection.client.tasks.list(project=project_id, fields="all", page_size=500))


def test_labeling_config_is_validated_by_the_server(connection):
    for votes in (False, True):
        for regions in (False, True):  # raises on HTTP >= 400
            connection.post_json(
                "/api/projects/validate/", {"label_config": labeling_config(votes=votes, regions=regions)}
            )
    with pytest.raises(MedgenError, match="HTTP 400"):
        connection.post_json(
            "/api/projects/validate/", {"label_config": "<View><Choices name='x' toName='nope'/></View>"}
        )
    # 4 candidates x (no defects + 4 dimensions + 4 "other" notes + rationale + box + point)
    assert len(controls()) == 48


def test_round_trip_overlap_blinding_gold_and_idempotence(ls_workspace, connection):
    ws = ls_workspace
    sources = add_sources(ws, 9)
    config = PushConfig(
        annotators=["ann1", "ann2", "ann3"], overlap=2, gold_rate=0.25, predictions=True, batch_size=4
    )
    report = push(ws, connection, config)
    assert report.projects_created == ["ann1", "ann2", "ann3"] and report.new_sources == 9
    assert report.gold_sources == 2

    rows = ws.catalog.query("SELECT source_id, annotator, is_gold, ls_project_id, ls_task_id FROM tasks")
    gold = {r["source_id"] for r in rows if r["is_gold"]}
    per_source = Counter(r["source_id"] for r in rows)
    assert all(per_source[s] == (3 if s in gold else 2) for s in sources)  # gold to all, others to exactly 2
    loads = Counter(r["annotator"] for r in rows if not r["is_gold"])
    assert sorted(loads.values()) == [4, 5, 5]  # 7 non-gold x 2 = 14 over 3 annotators, balanced
    # Blinding: each annotator's project holds exactly its own tasks. Every task, gold included, carries
    # the same kind of pre-fill (a simulated screener's answer, errors included): nothing marks gold out.
    for name in ("ann1", "ann2", "ann3"):
        project_id = next(r["ls_project_id"] for r in rows if r["annotator"] == name)
        on_server = _project_tasks(connection, project_id)
        assert {t.data["source_id"] for t in on_server} == {
            r["source_id"] for r in rows if r["annotator"] == name
        }
        for task in on_server:
            [prediction] = task.predictions
            source_id = task.data["source_id"]
            expected = simulated_prefill(source_id, ws.catalog.candidates(source_id))
            assert prediction.model_version == SIMULATED_MODEL and prediction.score == expected.score
            assert [(r["from_name"], r["value"]) for r in prediction.result] == [
                (r["from_name"], r["value"]) for r in label_result(expected.labels)
            ]

    # Images are served by Label Studio's local-files storage, straight from the workspace store.
    image = httpx.get(
        connection.url + on_server[0].data["A"], headers={"Authorization": f"Token {connection.token}"}
    )
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    made = simulate_annotators(ws, connection, noise=0.0, seed=1)
    assert sum(made.values()) == len(rows)
    status = {s.annotator: s for s in project_status(ws, connection)}
    assert status["ann1"].done == status["ann1"].tasks and status["ann1"].remaining == 0
    assert status["ann1"].mean_seconds is not None and status["ann1"].mean_seconds > 0

    pulled = pull(ws, connection)
    assert pulled.new == len(rows) and pulled.statuses == Counter({VALID: len(rows)})
    labels = json.loads(ws.catalog.query("SELECT labels FROM annotations LIMIT 1")[0]["labels"])
    assert all(item["rationale"].startswith(MARK) for item in labels)

    result = agreement(ws, connection)
    assert result.alpha["acceptable"] == pytest.approx(1.0)
    assert result.gold and all(score["candidate_accuracy"] == 1.0 for score in result.gold.values())
    assert set(result.gold) == {"ann1", "ann2", "ann3"}
    consensus = consensus_labels(ws)
    assert set(consensus.items) == set(sources) and not consensus.unresolved and consensus.simulated
    for source_id in sources:
        truth = known_labels(ws.catalog.candidates(source_id))
        got = consensus.items[source_id]
        assert [(label.defects, label.acceptable) for label in got.labels] == [
            (t.defects, t.acceptable) for t in truth
        ]
        assert got.agreement == 1.0 and got.num_annotators == (3 if source_id in gold else 2)

    # Idempotent: nothing new to push or pull; new sources are pushed alone, balanced onto the loads.
    again = push(ws, connection, config)
    assert again.new_sources == 0 and sum(again.imported.values()) == 0
    assert pull(ws, connection).unchanged == len(rows)
    add_sources(ws, 3, start=100)
    more = push(ws, connection, config)
    assert more.new_sources == 3 and ws.catalog.count("tasks") == len(rows) + sum(more.imported.values())


def test_gold_scoring_catches_a_careless_annotator(ls_workspace, connection):
    ws = ls_workspace
    add_sources(ws, 4)
    push(ws, connection, PushConfig(annotators=["good", "careless"], overlap=1, gold_rate=0.5))
    simulate_annotators(ws, connection, noise=0.0)
    # "careless" reworks every gold answer: everything acceptable.
    careless = ws.catalog.query(
        "SELECT ls_task_id FROM tasks t JOIN ls_projects p USING (ls_project_id) WHERE p.annotator = 'careless' AND is_gold = 1"
    )
    for row in careless:
        for annotation in connection.client.annotations.list(row["ls_task_id"]):
            connection.client.annotations.update(annotation.id, result=label_result((OK, OK, OK, OK)))
    pull(ws, connection)
    gold = agreement(ws, None).gold
    assert gold["good"]["candidate_accuracy"] == 1.0
    assert gold["careless"]["candidate_accuracy"] < 0.6 and gold["careless"]["gold_tasks"] == 2


def _tie(ws, connection) -> tuple[str, tuple[CandidateLabel, ...]]:
    """One source, two annotators who disagree on every defective candidate: (source id, known labels)."""
    (source_id,) = add_sources(ws, 1)
    push(ws, connection, PushConfig(annotators=["a", "b"], overlap=2))
    truth = known_labels(ws.catalog.candidates(source_id))
    tasks = {
        r["annotator"]: r["ls_task_id"] for r in ws.catalog.query("SELECT annotator, ls_task_id FROM tasks")
    }
    connection.client.annotations.create(tasks["a"], result=label_result(truth))
    connection.client.annotations.create(tasks["b"], result=label_result((OK, OK, OK, OK)))
    pull(ws, connection)
    return source_id, truth


def test_tie_goes_to_adjudication_whose_answer_wins(ls_workspace, connection):
    ws = ls_workspace
    source_id, truth = _tie(ws, connection)
    first = agreement(ws, connection)
    assert source_id in first.consensus.unresolved and "tie" in first.consensus.unresolved[source_id]
    assert first.adjudication_pushed == 1
    assert agreement(ws, connection).adjudication_pushed == 0  # already queued
    adj = ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = ?", (ADJUDICATOR,))[0][
        "ls_task_id"
    ]
    connection.client.annotations.create(adj, result=label_result(truth))
    pull(ws, connection)
    item = consensus_labels(ws).items[source_id]
    assert item.adjudicated and [lb.defects for lb in item.labels] == [t.defects for t in truth]
    assert item.agreement == pytest.approx(0.5 + 0.5 * sum(t.acceptable for t in truth) / 4)


def test_adjudicator_sees_the_votes_and_an_unusable_adjudication_is_reopened(ls_workspace, connection):
    ws = ls_workspace
    source_id, truth = _tie(ws, connection)
    agreement(ws, connection)
    adj = ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = ?", (ADJUDICATOR,))[0][0]
    shown = connection.client.tasks.get(adj).data["votes"]
    assert shown.startswith("a: ") and " | b: A ok, B ok, C ok, D ok" in shown  # both answers, by name
    project = connection.client.projects.get(
        ws.catalog.query("SELECT ls_project_id FROM tasks WHERE ls_task_id = ?", (adj,))[0][0]
    )
    assert project.skip_queue == "REQUEUE_FOR_ME"  # a skipped adjudication comes back to the adjudicator

    # An adjudication that cannot be used (a candidate both acceptable and tagged) reopens the task.
    bad = connection.client.annotations.create(adj, result=_bad_result("add:A_placement_layout=floating"))
    pull(ws, connection)
    reopened = agreement(ws, connection)
    assert reopened.adjudication_requeued == 1 and source_id in reopened.consensus.unresolved
    assert [a.id for a in connection.client.annotations.list(adj)] == []  # back in the queue
    pull(ws, connection)
    kept = ws.catalog.query("SELECT status, reasons FROM annotations WHERE ls_annotation_id = ?", (bad.id,))[
        0
    ]
    assert kept["status"] == CONTRADICTORY and "acceptable but tagged" in kept["reasons"]  # not 'deleted'


def test_consensus_needs_the_overlap_by_default(ls_workspace, connection):
    ws = ls_workspace
    (source_id,) = add_sources(ws, 1)
    push(ws, connection, PushConfig(annotators=["a", "b"], overlap=2))
    task = ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = 'a'")[0][0]
    connection.client.annotations.create(
        task, result=label_result(known_labels(ws.catalog.candidates(source_id)))
    )
    pull(ws, connection)
    assert "only 1 valid annotation(s), 2 required" in consensus_labels(ws).unresolved[source_id]
    assert source_id in consensus_labels(ws, min_annotators=1).items


BAD = {
    "cancelled": (dict(result=[], was_cancelled=True), CANCELLED, "skipped"),
    "empty": (dict(result=[]), INCOMPLETE, "empty result"),
    "incomplete": (dict(result="drop:B_acceptable"), INCOMPLETE, "B has no acceptable answer"),
    "unknown_control": (dict(result="add:E_acceptable=yes"), INVALID, "unknown control 'E_acceptable'"),
    "unknown_tag": (dict(result="add:A_lighting_shadow=glare"), INVALID, "unknown tag(s)"),
    "two_values": (dict(result="set:A_acceptable=yes,no"), INVALID, "in a single choice"),
    "acceptable_with_defect": (
        dict(result="add:A_placement_layout=floating"),
        CONTRADICTORY,
        "A is marked acceptable but tagged floating",
    ),
    "rejected_without_tag": (dict(result="set:A_acceptable=no"), CONTRADICTORY, "without any defect tag"),
}


def _bad_result(spec: str) -> list[dict]:
    """Start from a valid all-acceptable answer and break it as ``spec`` says."""
    result = label_result((OK, OK, OK, OK))
    op, _, arg = spec.partition(":")
    name, _, values = arg.partition("=")
    if op == "drop":
        return [item for item in result if item["from_name"] != name]
    if op == "set":
        return [
            {**item, "value": {"choices": values.split(",")}} if item["from_name"] == name else item
            for item in result
        ]
    return [
        *result,
        {"from_name": name, "to_name": "img_A", "type": "choices", "value": {"choices": values.split(",")}},
    ]


def test_each_bad_annotation_is_reported_and_kept_out_of_consensus(ls_workspace, connection):
    ws = ls_workspace
    add_sources(ws, len(BAD) + 1)
    push(ws, connection, PushConfig())
    task_rows = ws.catalog.query("SELECT ls_task_id, source_id FROM tasks ORDER BY ls_task_id")
    tasks = [r["ls_task_id"] for r in task_rows]
    expected = {}
    for task_id, (case, (kwargs, status, reason)) in zip(tasks, BAD.items(), strict=False):
        result = kwargs["result"]
        made = connection.client.annotations.create(
            task_id,
            result=_bad_result(result) if isinstance(result, str) else result,
            was_cancelled=kwargs.get("was_cancelled", False),
        )
        expected[made.id] = (case, status, reason)
    good = connection.client.annotations.create(tasks[-1], result=label_result((OK, OK, OK, OK)))

    report = pull(ws, connection)
    rows = {r["ls_annotation_id"]: r for r in ws.catalog.query("SELECT * FROM annotations")}
    assert len(rows) == len(BAD) + 1  # cancelled ones included: nothing silently dropped
    for annotation_id, (case, status, reason) in expected.items():
        row = rows[annotation_id]
        assert row["status"] == status, case
        assert any(reason in r for r in json.loads(row["reasons"])), (case, row["reasons"])
        assert row["labels"] is None
    assert rows[good.id]["status"] == VALID
    listed = json.loads(report.report_path.read_text())
    assert {item["annotation_id"] for item in listed["not_used"]} == set(expected)
    consensus = consensus_labels(ws)
    assert set(consensus.items) == {task_rows[-1]["source_id"]}
    assert len(consensus.unresolved) == len(BAD) and all(
        "no valid annotation" in r for r in consensus.unresolved.values()
    )


def test_every_export_shape_parses_to_the_same_annotations(ls_workspace, connection, ls_host):
    """JSON, JSON_MIN, the API's list and Label Studio's database give the same answers, regions included (the
    queue marks regions; the simulated annotator draws the true ones, a little off)."""
    ws = ls_workspace
    add_sources(ws, 3, regions=True)
    push(ws, connection, PushConfig(regions=True))
    simulate_annotators(ws, connection, noise=0.0)
    project_id = ws.catalog.query("SELECT ls_project_id FROM ls_projects")[0]["ls_project_id"]
    from_json = {a.id: a for a in fetch_project(connection, project_id)}
    minimal = connection.get_json(f"/api/projects/{project_id}/export", exportType="JSON_MIN")
    from_min = {a.id: a for a in parse_export(minimal)}
    task_ids = [r["ls_task_id"] for r in ws.catalog.query("SELECT ls_task_id FROM tasks")]
    api_list = [a.model_dump(mode="json") for t in task_ids for a in connection.client.annotations.list(t)]
    from_api = {a.id: a for a in parse_export(api_list)}
    assert set(from_json) == set(from_min) == set(from_api) and len(from_json) == 3
    # The fast path for the workspace's own server reads Label Studio's database: the very same annotations.
    from annotation.ls_database import fetch_project_db
    from annotation.pull import local_database

    assert local_database(ws, connection) is None  # another workspace's server (--url): the API is used
    database = ls_host / "labelstudio" / "data" / "label_studio.sqlite3"
    from_db = {a.id: a for a in fetch_project_db(database, project_id)}
    assert set(from_db) == set(from_json)
    for annotation_id, raw in from_json.items():
        db = from_db[annotation_id]
        assert (db.task_id, db.result, db.cancelled, db.created_at, db.updated_at) == (
            raw.task_id,
            raw.result,
            raw.cancelled,
            raw.created_at,
            raw.updated_at,
        )
    from annotation.validation import check

    drawn = 0
    for annotation_id, raw in from_json.items():
        expected = check(raw)
        assert expected.status == VALID
        drawn += sum(len(label.regions) for label in expected.labels)
        assert check(from_min[annotation_id]).labels == expected.labels
        assert check(from_api[annotation_id]).labels == expected.labels

    assert drawn >= 3  # each source has defects with regions (add_sources), and they came back
    path = ws.root / "export_min.json"
    path.write_text(json.dumps(minimal))
    assert len(read_export_file(path)) == 3
    assert pull(ws, None, [path]).new == 3
    assert pull(ws, connection).unchanged == 3  # same ids from the server: nothing stored twice
    assert ws.catalog.count("annotations") == 3

    # Through the CLI: an idempotent pull, then an annotation deleted in Label Studio is kept, marked, unused.
    runner = CliRunner()
    result = runner.invoke(app, ["annotate", "pull", "-w", str(ws.root), "--url", connection.url])
    assert result.exit_code == 0 and "unchanged 3" in result.output, result.output
    connection.client.annotations.delete(next(iter(from_json)))
    result = runner.invoke(app, ["annotate", "pull", "-w", str(ws.root), "--url", connection.url])
    assert "deleted in Label Studio 1" in result.output, result.output
    assert ws.catalog.count("annotations", "status = 'deleted'") == 1
    assert len(consensus_labels(ws).items) == 2
    result = runner.invoke(app, ["annotate", "agreement", "-w", str(ws.root), "--no-adjudicate"])
    assert (
        result.exit_code == 0 and "acceptable" in result.output and "consensus 2 source(s)" in result.output
    )


def test_a_pull_killed_midway_keeps_its_committed_chunks_and_the_rerun_goes_on(
    ls_workspace, connection, ls_server, ls_root
):
    import os
    import subprocess
    import sys

    ws = ls_workspace
    add_sources(ws, 6)
    push(ws, connection, PushConfig(annotators=["solo"]))
    simulate_annotators(ws, connection, noise=0.0)
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from annotation import pull as p\n"
        "from annotation.client import connect\n"
        "from medgen.workspace import open_workspace\n"
        "p.CHUNK = 2\n"
        "ws = open_workspace(Path(sys.argv[1]))\n"
        "connection = connect(ws, url=sys.argv[2], document_root=Path(sys.argv[3]))\n"
        "p.pull(ws, connection, on_progress=lambda n: os.kill(os.getpid(), signal.SIGKILL))\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(ws.root), ls_server[0], str(ls_root)], env=dict(os.environ)
    )
    assert killed.returncode == -9  # kill -9 right after its first chunk of two annotations committed
    assert ws.catalog.count("annotations") == 2
    resumed = pull(ws, connection)
    assert (resumed.new, resumed.unchanged) == (4, 2) and ws.catalog.count("annotations") == 6
