"""Whatever happens to a queue on the server, nothing pulled is lost and nobody is blocked.

A queue's project deleted behind medgen's back: status, pull and push name it in one line and go on
with the others; `annotate repair` makes it again with the same tasks, pre-fills and gold, and the
answers already pulled, so nobody is asked again. A Label Studio database restored from an older
backup: `serve` moves its id counters past the catalog's, pull marks what it lost as ``lost`` (kept),
and repair imports the lost tasks and answers again.
"""

from __future__ import annotations

import shutil

import pytest

from annotation.client import connect
from annotation.server import load_credentials, serve, stop
from annotation.simulate import simulate_annotators
from medgen.cli import app
from tests.annotation.conftest import add_sources

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def _latest_valid(ws) -> dict[tuple[str, str], str]:
    """Each person's counted answer per source: what consensus and the export use."""
    rows = ws.catalog.query(
        "SELECT annotator, source_id, labels FROM annotations WHERE status = 'valid' ORDER BY ls_annotation_id"
    )
    return {(r["annotator"], r["source_id"]): r["labels"] for r in rows}


def _invoke(runner, *args):
    result = runner.invoke(app, ["annotate", *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.mark.parametrize(
    "gone", ["ann1", "ann2"]
)  # ann2's tasks have the highest ids: SQLite gives them again
def test_a_deleted_queue_is_named_everywhere_and_repaired_with_nothing_lost(
    team_workspace, runner, gone
) -> None:
    ws = team_workspace
    kept = "ann2" if gone == "ann1" else "ann1"
    w = ["-w", str(ws.root)]
    add_sources(ws, 6)
    _invoke(
        runner, "push", *w, "--annotators", "ann1,ann2", "--gold-rate", "0.34", "--predictions", "simulated"
    )
    connection = connect(ws)
    simulate_annotators(ws, connection, noise=0.0)
    _invoke(runner, "pull", *w)
    before = _latest_valid(ws)
    project = ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE annotator = ?", (gone,))[0][0]
    answered = {s for (name, s) in before if name == gone}
    assert answered

    connection.queue(gone).client.projects.delete(project)  # an admin's one click: the project and its work

    status = _invoke(runner, "status", *w)
    assert "gone from the server" in status and gone in status and kept in status
    pulled = _invoke(runner, "pull", *w)
    assert f"{gone}'s queue (project {project}) is gone" in pulled and "annotate repair" in pulled
    assert _latest_valid(ws) == before  # nothing pulled from that queue was marked deleted
    add_sources(ws, 2, start=6)
    pushed = _invoke(runner, "push", *w, "--annotators", "ann1,ann2")
    assert (
        f"{gone}'s queue (project {project}) is gone" in pushed and f"{kept} " in pushed
    )  # the other got theirs

    repaired = _invoke(runner, "repair", *w)
    new = ws.catalog.query(
        "SELECT ls_project_id FROM ls_projects WHERE annotator = ? AND retired_at IS NULL", (gone,)
    )[0][0]
    planned = {r[0] for r in ws.catalog.query("SELECT source_id FROM task_plan WHERE annotator = ?", (gone,))}
    gold = {r[0] for r in ws.catalog.query("SELECT source_id FROM task_plan WHERE is_gold = 1")}
    assert (
        f"{gone}'s queue: project {project} was gone; made project {new} with {len(planned)} task(s), "
        in repaired
    )
    assert f"{len(answered)} of them with the answer already pulled from {gone}" in repaired
    service = connect(ws).queue(gone)
    tasks = list(service.client.tasks.list(project=new, fields="all", page_size=100))
    assert {t.data["source_id"] for t in tasks} == planned and gold <= planned  # the same tasks, gold too
    prefilled = {r[0] for r in ws.catalog.query("SELECT source_id FROM prefills")}
    assert all(t.predictions for t in tasks if t.data["source_id"] in prefilled)  # the same pre-fills
    user = load_credentials(ws).accounts[gone].user_id
    restored = {t.data["source_id"] for t in tasks if t.annotations}
    assert restored == answered  # not asked again what they answered
    assert all(a["completed_by"] == user for t in tasks for a in t.annotations)
    person = connection.with_token(load_credentials(ws).accounts[gone].token)
    upcoming = person.get_json(f"/api/projects/{new}/next/")
    assert upcoming["data"]["source_id"] in planned - answered  # their queue goes on where it stopped

    _invoke(runner, "pull", *w)
    after = _latest_valid(ws)
    assert {key: after[key] for key in before} == before  # every answer pulled before still counts
    assert ws.catalog.count("annotations", "ls_project_id = ?", (project,)) == len(answered)  # kept
    assert "every queue is on the server" in _invoke(runner, "repair", *w)  # a second run does nothing
    assert "consensus" in _invoke(runner, "agreement", *w, "--no-adjudicate")


def test_an_older_database_restored_loses_nothing_pulled(team_workspace, runner) -> None:
    """Restored from a backup taken before the last push and the answers: ids are not reused, repair
    imports the lost tasks and answers again, and every answer pulled before counts as it did."""
    ws = team_workspace
    w = ["-w", str(ws.root)]
    add_sources(ws, 4)
    _invoke(runner, "push", *w, "--annotators", "ann1")
    database = ws.labelstudio_dir / "data" / "label_studio.sqlite3"
    backup = ws.root / "backup.sqlite3"
    stop(ws)
    shutil.copyfile(database, backup)  # the team's last backup
    serve(ws)
    add_sources(ws, 2, start=4)
    _invoke(runner, "push", *w, "--annotators", "ann1")  # two tasks the backup lacks
    simulate_annotators(ws, connect(ws), noise=0.0)
    _invoke(runner, "pull", *w)
    before = _latest_valid(ws)
    assert len(before) == 6

    stop(ws)
    shutil.copyfile(backup, database)  # the server's disk is restored from the backup
    started = serve(ws)
    assert any("older than the catalog" in note for note in started.notes)
    pulled = _invoke(runner, "pull", *w)
    assert "gone with an older backup" in pulled and "annotate repair" in pulled
    assert ws.catalog.count("annotations", "status = 'lost'") == 6  # kept, not counted, not 'deleted'
    repaired = _invoke(runner, "repair", *w)
    assert "ann1's queue" in repaired and "6 of them with the answer already pulled from ann1" in repaired
    _invoke(runner, "pull", *w)
    after = _latest_valid(ws)
    assert after == before  # each answer counts again, with the same labels
    # The originals are kept, even where Label Studio gave their ids to the copies (SQLite imports do).
    assert ws.catalog.count("annotations", "status = 'restored'") == 6
    assert ws.catalog.count("annotations") == 12
    assert "every queue is on the server" in _invoke(runner, "repair", *w)
