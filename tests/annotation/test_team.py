"""Annotation by a team on the workspace's own server: a login per annotator, blind queues, credit by person."""

from __future__ import annotations

import os
import stat
import threading

import httpx
import pytest

from annotation.accounts import reset_password
from annotation.client import connect
from annotation.config import label_result
from annotation.pull import pull
from annotation.push import PushConfig, push
from annotation.server import load_credentials, serve, stop
from medgen.cli import app
from medgen.workspace import init_workspace
from schemas import CandidateLabel
from tests.annotation.conftest import add_sources, seed_labelstudio

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

OK = CandidateLabel(acceptable=True)


def login(url: str, email: str, password: str) -> httpx.Client:
    """A browser-like session: Label Studio's login form, CSRF token and session cookie."""
    session = httpx.Client(base_url=url, follow_redirects=True, timeout=60)
    session.get("/user/login/")
    response = session.post(
        "/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{url}/user/login/"},
    )
    me = session.get("/api/current-user/whoami")
    assert response.status_code == 200 and me.status_code == 200, f"login of {email} failed"
    assert me.json()["email"] == email
    return session


def test_each_annotator_logs_in_and_sees_only_their_own_queue(team_workspace, runner) -> None:
    ws = team_workspace
    sources = add_sources(ws, 4)
    result = runner.invoke(
        app, ["annotate", "push", "-w", str(ws.root), "--annotators", "ann1,ann2", "--overlap", "1"]
    )
    assert result.exit_code == 0, result.output
    creds = load_credentials(ws)
    assert set(creds.accounts) == {
        "ann1",
        "ann2",
        "adjudicator",
    }  # the adjudicator's login is made with theirs
    assert stat.S_IMODE(os.stat(ws.labelstudio_dir / "credentials.json").st_mode) == 0o600
    for account in creds.accounts.values():  # each password shown once, here
        assert result.output.count(account.password) == 1
    assert "not blind" not in result.output
    log = (ws.labelstudio_dir / "server.log").read_text()
    assert not any(a.password in log or a.token in log for a in creds.accounts.values())

    projects = {r["annotator"]: r["ls_project_id"] for r in ws.catalog.query("SELECT * FROM ls_projects")}
    url = connect(ws).url
    sessions = {
        name: login(url, creds.accounts[name].email, creds.accounts[name].password) for name in projects
    }
    for name, session in sessions.items():
        listed = session.get("/api/projects/").json()["results"]
        assert [p["id"] for p in listed] == [projects[name]], f"{name} must see exactly their own project"
        tasks = session.get("/api/tasks/", params={"project": projects[name]}).json()["tasks"]
        assert {t["data"]["source_id"] for t in tasks} <= set(sources) and tasks

    # ann1 answers a task of their queue; ann2 cannot reach it by id, in any way.
    ann1 = connect(ws).with_token(creds.accounts["ann1"].token)
    task_id = ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = 'ann1' LIMIT 1")[0][0]
    made = ann1.client.annotations.create(task_id, result=label_result([OK] * 4))
    other = sessions["ann2"]
    for path in (
        f"/api/projects/{projects['ann1']}/",
        f"/api/tasks/{task_id}/",
        f"/api/annotations/{made.id}/",
        f"/api/tasks/?project={projects['ann1']}",
        f"/api/projects/{projects['ann1']}/export?exportType=JSON",
    ):
        response = other.get(path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert str(made.id) not in response.text or response.status_code != 200
    # Organizations are the admin's business: an annotator may not even list their own.
    assert sessions["ann1"].get("/api/organizations/").status_code == 403


def test_annotations_are_credited_to_the_person_who_made_them(team_workspace) -> None:
    ws = team_workspace
    add_sources(ws, 3)
    connection = connect(ws)
    push(ws, connection, PushConfig(annotators=["ann1", "ann2"], overlap=1))
    connection = connect(ws)  # knows the new logins
    creds = load_credentials(ws)
    tasks = [
        r[0] for r in ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = 'ann1' ORDER BY 1")
    ]
    ann1 = connection.with_token(creds.accounts["ann1"].token)
    counted = ann1.client.annotations.create(tasks[0], result=label_result([OK] * 4))
    first = ann1.client.annotations.create(tasks[-1], result=label_result([OK] * 4))
    second = ann1.client.annotations.create(tasks[-1], result=label_result([OK] * 4))  # the same task again
    # Someone else's answer in ann1's queue, as an admin of ann1's organization could make it.
    foreign = connection.queue("ann1").post_json(
        f"/api/tasks/{tasks[0]}/annotations/",
        {"result": label_result([OK] * 4), "completed_by": creds.accounts["ann2"].user_id},
    )
    report = pull(ws, connection)
    status = {r["ls_annotation_id"]: r for r in ws.catalog.query("SELECT * FROM annotations")}
    assert (
        status[counted.id]["status"] == "valid"
        and status[counted.id]["completed_by"] == creds.accounts["ann1"].user_id
    )
    assert status[second.id]["status"] == "valid"
    assert status[first.id]["status"] == "duplicate" and str(second.id) in status[first.id]["reasons"]
    assert status[foreign["id"]]["status"] == "foreign"
    assert "ann2@medgen.local" in status[foreign["id"]]["reasons"]
    assert report.statuses["foreign"] == 1 and report.statuses["duplicate"] == 1
    pulled = report.report_path.read_text()
    assert '"foreign"' in pulled and '"duplicate"' in pulled
    assert pull(ws, connection).new == 0  # idempotent, statuses kept


def test_users_commands_and_password_reset(team_workspace, runner) -> None:
    ws = team_workspace
    added = runner.invoke(app, ["annotate", "users", "add", "carol", "-w", str(ws.root)])
    assert added.exit_code == 0, added.output
    old = load_credentials(ws).accounts["carol"].password
    assert old in added.output
    listed = runner.invoke(app, ["annotate", "users", "list", "-w", str(ws.root)])
    assert "carol@medgen.local" in listed.output and old not in listed.output
    url = connect(ws).url
    login(url, "carol@medgen.local", old)
    new = reset_password(ws, "carol").password
    assert new != old and load_credentials(ws).accounts["carol"].password == new
    login(url, "carol@medgen.local", new)
    with pytest.raises(AssertionError):
        login(url, "carol@medgen.local", old)
    bad = runner.invoke(app, ["annotate", "users", "add", "no way", "-w", str(ws.root)])
    assert bad.exit_code == 1 and "letters, digits" in bad.output and "Traceback" not in bad.output
    unknown = runner.invoke(app, ["annotate", "users", "reset-password", "dave", "-w", str(ws.root)])
    assert unknown.exit_code == 1 and "no annotator 'dave'" in unknown.output


@pytest.mark.postgres
def test_the_same_round_trip_on_postgresql(ls_root, runner) -> None:
    """serve on PostgreSQL, push to two annotators, annotate as them, pull (database read = API), agreement."""
    from annotation.ls_database import fetch_project_db
    from annotation.pull import fetch_project, local_database
    from annotation.simulate import simulate_annotators
    from tests.annotation.postgres import PASSWORD, postgres_server

    with postgres_server() as url:
        ws = init_workspace(ls_root / f"pg-{os.urandom(3).hex()}")
        try:
            served = runner.invoke(
                app, ["annotate", "serve", "-w", str(ws.root)], env={"MEDGEN_LS_DATABASE": url}
            )
            assert served.exit_code == 0, served.output
            assert (
                "database postgresql://medgen:***@127.0.0.1" in served.output
                and PASSWORD not in served.output
            )
            assert not (ws.labelstudio_dir / "data" / "label_studio.sqlite3").exists()
            add_sources(ws, 6)
            pushed = runner.invoke(
                app, ["annotate", "push", "-w", str(ws.root), "--annotators", "ann1,ann2", "--overlap", "2"]
            )
            assert pushed.exit_code == 0, pushed.output
            connection = connect(ws)
            assert simulate_annotators(ws, connection, noise=0.0) == {"ann1": 6, "ann2": 6}
            database = local_database(ws, connection)
            assert database == url  # the fast path reads PostgreSQL
            for row in ws.catalog.query("SELECT ls_project_id, annotator FROM ls_projects"):
                from_db = {a.id: a for a in fetch_project_db(database, row[0])}
                from_api = {a.id: a for a in fetch_project(connection.queue(row[1]), row[0])}
                assert set(from_db) == set(from_api) and len(from_db) == 6
                for key, db in from_db.items():
                    api = from_api[key]
                    fields = (
                        "task_id",
                        "result",
                        "cancelled",
                        "lead_time",
                        "created_at",
                        "updated_at",
                        "completed_by",
                    )
                    assert [getattr(db, f) for f in fields] == [getattr(api, f) for f in fields]
            report = pull(ws, connection)
            assert report.statuses["valid"] == 12 and not report.notes
            owners = {
                r["annotator"]: r["completed_by"] for r in ws.catalog.query("SELECT * FROM annotations")
            }
            creds = load_credentials(ws)
            assert owners == {name: creds.accounts[name].user_id for name in ("ann1", "ann2")}
            agreed = runner.invoke(app, ["annotate", "agreement", "-w", str(ws.root)])
            assert agreed.exit_code == 0 and "consensus 6 source(s)" in agreed.output, agreed.output
        finally:
            stop(ws)
            ws.close()
        # The database gone: starting says so in one line.
    unreachable = runner.invoke(app, ["annotate", "serve", "-w", str(ws.root)])
    assert (
        unreachable.exit_code == 1 and "PostgreSQL at postgresql://medgen:***@127.0.0.1" in unreachable.output
    )
    assert "unreachable" in unreachable.output and "Traceback" not in unreachable.output


def test_behind_an_https_reverse_proxy_the_login_form_works(ls_root) -> None:
    """--public-url: the proxy's HTTPS origin is trusted for CSRF and cookies are HTTPS-only."""
    public = "https://annotate.example.org"
    proxied = {
        "Host": "annotate.example.org",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "annotate.example.org",
    }
    outcomes = {}
    for behind_proxy in (True, False):
        ws = init_workspace(ls_root / f"proxy-{behind_proxy}-{os.urandom(3).hex()}")
        seed_labelstudio(ws)
        info = serve(ws, host="127.0.0.1", public_url=public if behind_proxy else None)
        try:
            creds = load_credentials(ws)
            page = httpx.get(info.url + "/user/login/", headers=proxied)
            csrf = page.cookies["csrftoken"]
            secure = "secure" in page.headers["set-cookie"].lower()
            # What the browser sends through the proxy: its HTTPS origin, and the cookie it was given.
            sent = httpx.post(
                info.url + "/user/login/",
                headers={
                    **proxied,
                    "Origin": public,
                    "Referer": f"{public}/user/login/",
                    "Cookie": f"csrftoken={csrf}",
                },
                data={"email": creds.username, "password": creds.password, "csrfmiddlewaretoken": csrf},
            )
            outcomes[behind_proxy] = (sent.status_code, secure, info.public_url)
        finally:
            stop(ws)
            ws.close()
    assert outcomes[True] == (302, True, public)  # logged in, redirected into the app
    assert outcomes[False][0] == 403  # without --public-url, Django's CSRF check refuses the proxied form


def test_database_reads_survive_a_lock_and_a_row_without_project(team_workspace, monkeypatch) -> None:
    import sqlite3

    import annotation.ls_database as database_module
    from annotation.simulate import simulate_annotators

    ws = team_workspace
    add_sources(ws, 3)
    connection = connect(ws)
    push(ws, connection, PushConfig(annotators=["ann1"]))
    simulate_annotators(ws, connection, noise=0.0)
    first = pull(ws, connection)
    assert first.new == 3 and not first.notes
    database = ws.labelstudio_dir / "data" / "label_studio.sqlite3"
    with sqlite3.connect(database) as conn:  # Label Studio leaves project_id empty on some rows
        conn.execute(
            "UPDATE task_completion SET project_id = NULL WHERE id = (SELECT MIN(id) FROM task_completion)"
        )
    again = pull(ws, connection)
    assert again.deleted == 0 and ws.catalog.count("annotations", "status = 'valid'") == 3

    monkeypatch.setattr(database_module, "DB_TIMEOUT_S", 0.2)
    locker = sqlite3.connect(database, timeout=5, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # a writer holds the database for a second: medgen's read gives up
    release = threading.Timer(1.0, lambda: (locker.execute("ROLLBACK"), locker.close()))
    release.start()
    try:
        locked = pull(ws, connection)  # ... and the export API answers once the writer is done
    finally:
        release.join()
    assert locked.deleted == 0 and locked.unchanged == 3
    assert any("could not be read" in note and "used the export API" in note for note in locked.notes)
