"""What annotators and the adjudicator can do on the Label Studio medgen starts: label their own queue,
and nothing else (``annotation.ls_roles``).

Each role logs in through the login form and, separately, uses its API token, and tries what an
attacker would: change or delete projects and labeling configs, import, export, storages of every
kind (one pointed at the workspace's credentials), webhooks, ML backends, tasks and other people's
annotations, Data Manager actions that change data, users, invites, tokens, the Django admin, and
reading workspace files through local-files serving. Every try is refused, and the server's state,
read from Label Studio's own database, is the same afterwards. Then the labeling itself still works,
over the session and the token. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from annotation.accounts import ensure_accounts
from annotation.client import connect
from annotation.config import label_result
from annotation.ls_database import connect_database
from annotation.push import ADJUDICATOR, PushConfig, adjudication_project, import_batches, push
from annotation.server import Credentials, load_credentials, serve, stop
from medgen.workspace import Workspace, init_workspace
from schemas import CandidateLabel
from tests.annotation.conftest import add_sources, seed_labelstudio
from tests.annotation.test_team import login

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

OK = CandidateLabel(acceptable=True)
ANSWER = {"result": label_result([OK] * 4)}

STATE = {
    "project": "SELECT id, title, description, label_config, expert_instruction, organization_id, "
    "show_skip_button, maximum_annotations FROM project",
    "task": "SELECT id, project_id, data FROM task",
    "task_completion": "SELECT id, task_id, completed_by_id, result, was_cancelled FROM task_completion",
    "prediction": "SELECT id, task_id, result FROM prediction",
    "tasks_annotationdraft": "SELECT id, task_id, user_id, result FROM tasks_annotationdraft",
    "io_storages_localfilesmixin": "SELECT id, path FROM io_storages_localfilesmixin",
    "io_storages_localfilesimportstorage": "SELECT localfilesmixin_ptr_id, project_id, title "
    "FROM io_storages_localfilesimportstorage",
    "io_storages_localfilesexportstorage": "SELECT localfilesmixin_ptr_id, project_id "
    "FROM io_storages_localfilesexportstorage",
    "io_storages_s3importstorage": "SELECT id, project_id FROM io_storages_s3importstorage",
    "webhook": "SELECT id, url FROM webhook",
    "ml_mlbackend": "SELECT id, url FROM ml_mlbackend",
    "htx_user": "SELECT id, email, username, first_name, is_superuser, is_staff, is_active FROM htx_user",
    "htx_user_groups": "SELECT user_id, group_id FROM htx_user_groups",
    "organization": "SELECT id, title, token FROM organization",
    "organizations_organizationmember": "SELECT user_id, organization_id, deleted_at FROM organizations_organizationmember",
    "authtoken_token": "SELECT key, user_id FROM authtoken_token",
    "labels_manager_label": "SELECT id, title FROM labels_manager_label",
}
"""What an attacker would change, table by table (columns that legitimately move, like last_activity, left out)."""


@dataclass
class Team:
    ws: Workspace
    url: str
    creds: Credentials
    database: Path | str
    projects: dict[str, int]  # person -> their queue's project
    tasks: dict[str, list[int]]  # person -> their tasks
    own: dict[str, int]  # person -> an annotation they made
    foreign: dict[str, int]  # person -> an annotation someone else made in their project
    storage: int  # a local-files storage of ann1's project

    def token(self, name: str) -> str:
        return self.creds.accounts[name].token


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def team(request, tmp_path_factory) -> Iterator[Team]:
    """ann1, ann2 (overlap 2, gold, pre-fills) and the adjudicator, on a server medgen started."""
    with contextlib.ExitStack() as stack:
        ws = init_workspace(tmp_path_factory.mktemp("roles") / "ws")
        stack.callback(ws.close)
        database: str | None = None
        if request.param == "postgres":
            from tests.annotation.postgres import postgres_server

            database = stack.enter_context(postgres_server())
        else:
            seed_labelstudio(ws)
        info = serve(ws, database=database)
        stack.callback(stop, ws)
        sources = add_sources(ws, 6)
        push(
            ws,
            connect(ws),
            PushConfig(annotators=["ann1", "ann2"], overlap=2, gold_rate=0.2, predictions="simulated"),
        )
        connection, adjudication = adjudication_project(connect(ws), ws)
        import_batches(connection, ws, adjudication, ADJUDICATOR, sources[:4], set(), prefilled=True)
        ensure_accounts(ws, {"ann3": "annotator"})  # a login without a queue, for the password change
        creds = load_credentials(ws)
        projects = {r["annotator"]: r["ls_project_id"] for r in ws.catalog.query("SELECT * FROM ls_projects")}
        tasks = {
            name: [
                r[0] for r in ws.catalog.query("SELECT ls_task_id FROM tasks WHERE ls_project_id = ?", (pid,))
            ]
            for name, pid in projects.items()
        }
        connection = connect(ws)
        own, foreign = {}, {}
        for name in projects:
            own[name] = (
                connection.with_token(creds.accounts[name].token)
                .client.annotations.create(tasks[name][0], **ANSWER)
                .id
            )
            foreign[name] = connection.queue(name).client.annotations.create(tasks[name][1], **ANSWER).id
        storage = connection.queue("ann1").client.import_storage.local.list(project=projects["ann1"])[0].id
        db = database or ws.labelstudio_dir / "data" / "label_studio.sqlite3"
        yield Team(ws, info.url, creds, db, projects, tasks, own, foreign, storage)


def server_state(team: Team) -> dict[str, list[tuple[Any, ...]]]:
    """Every row an attacker could change, read from Label Studio's own database."""
    state = {}
    if isinstance(team.database, Path):
        with contextlib.closing(sqlite3.connect(f"file:{team.database}?mode=ro", uri=True)) as conn:
            for table, sql in STATE.items():
                state[table] = sorted(map(tuple, conn.execute(sql).fetchall()), key=repr)
    else:
        with connect_database(team.database, read_only=True) as conn:
            for table, sql in STATE.items():
                state[table] = sorted(map(tuple, conn.execute(sql).fetchall()), key=repr)
    return state


def attempts(team: Team, name: str) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of everything ``name`` must not be able to do."""
    p, t = team.projects[name], team.tasks[name][2]
    other = "ann2" if name != "ann2" else "ann1"
    ws = team.ws.root
    someone = team.creds.accounts[other].user_id
    me = team.creds.accounts[name]
    service = connect(team.ws).queue(name).client.users.whoami().id
    return [
        # projects and labeling configs
        ("POST", "/api/projects/", {"title": "mine"}),
        ("PATCH", f"/api/projects/{p}/", {"title": "renamed"}),
        ("PATCH", f"/api/projects/{p}/", {"label_config": "<View></View>"}),
        ("PUT", f"/api/projects/{p}/", {"title": "renamed"}),
        ("DELETE", f"/api/projects/{p}/", None),
        ("POST", f"/api/projects/{p}/validate/", {"label_config": "<View></View>"}),
        ("POST", "/api/projects/validate/", {"label_config": "<View></View>"}),
        ("GET", f"/api/projects/{p}/summary/", None),
        ("GET", f"/projects/{p}/settings", None),
        ("GET", f"/projects/{p}/settings/labeling", None),
        ("GET", f"/projects/{p}/data/import", None),
        ("GET", f"/projects/{p}/data/export", None),
        # import
        ("POST", f"/api/projects/{p}/import", [{"data": {"source_id": "x"}}]),
        ("POST", f"/api/projects/{p}/tasks/bulk/", [{"data": {"source_id": "x"}}]),
        ("POST", f"/api/projects/{p}/import/predictions", [{"task": t, "result": []}]),
        ("POST", f"/api/projects/{p}/reimport", {"file_upload_ids": []}),
        ("GET", f"/api/projects/{p}/file-uploads", None),
        # export
        ("GET", f"/api/projects/{p}/export?exportType=JSON", None),
        ("POST", f"/api/projects/{p}/exports/", {}),
        ("GET", f"/api/projects/{p}/exports/", None),
        ("GET", f"/api/projects/{p}/export/formats", None),
        # storages of every kind, one of them over the workspace's credentials
        ("POST", "/api/storages/localfiles/", {"project": p, "path": str(ws / "labelstudio"), "title": "x"}),
        ("POST", "/api/storages/localfiles/", {"project": p, "path": str(ws / "served"), "title": "x"}),
        ("POST", "/api/storages/localfiles/validate", {"project": p, "path": str(ws)}),
        ("GET", f"/api/storages/?project={p}", None),
        ("GET", f"/api/storages/localfiles/?project={p}", None),
        ("GET", f"/api/storages/localfiles/{team.storage}", None),
        ("PATCH", f"/api/storages/localfiles/{team.storage}", {"path": str(ws)}),
        ("DELETE", f"/api/storages/localfiles/{team.storage}", None),
        ("POST", f"/api/storages/localfiles/{team.storage}/sync", {}),
        ("POST", "/api/storages/s3/", {"project": p, "bucket": "b", "title": "x"}),
        ("POST", "/api/storages/gcs/", {"project": p, "bucket": "b", "title": "x"}),
        ("POST", "/api/storages/azure/", {"project": p, "container": "b", "title": "x"}),
        ("POST", "/api/storages/redis/", {"project": p, "path": "x", "title": "x"}),
        ("POST", "/api/storages/export/localfiles", {"project": p, "path": str(ws), "title": "x"}),
        ("GET", "/api/storages/types", None),
        # webhooks, ML backends
        ("POST", "/api/webhooks/", {"url": "http://127.0.0.1:9/", "project": p}),
        ("GET", "/api/webhooks/", None),
        ("POST", "/api/ml/", {"url": "http://127.0.0.1:9/", "project": p}),
        # tasks, predictions, other people's annotations, answers credited or moved to someone else
        ("DELETE", f"/api/tasks/{t}/", None),
        ("PATCH", f"/api/tasks/{t}/", {"data": {"source_id": "x"}}),
        ("POST", "/api/tasks/", {"project": p, "data": {"source_id": "x"}}),
        ("DELETE", f"/api/projects/{p}/tasks/", None),
        ("POST", "/api/predictions/", {"task": t, "result": []}),
        ("DELETE", f"/api/predictions/{_prediction(team, name)}/", None),
        ("DELETE", f"/api/annotations/{team.foreign[name]}/", None),
        ("PATCH", f"/api/annotations/{team.foreign[name]}/", ANSWER),
        ("DELETE", f"/api/annotations/{team.own[other]}/", None),
        ("POST", f"/api/tasks/{t}/annotations/", {**ANSWER, "completed_by": someone}),
        ("PATCH", f"/api/annotations/{team.own[name]}/", {**ANSWER, "completed_by": service}),
        ("PATCH", f"/api/annotations/{team.own[name]}/", {**ANSWER, "task": team.tasks[name][1]}),
        ("POST", f"/api/annotations/{team.own[name]}/convert-to-draft", {}),
        # Data Manager actions that change data
        ("GET", f"/api/dm/actions/?project={p}", None),
        *(
            (
                "POST",
                f"/api/dm/actions/?id={action}&project={p}",
                {"selectedItems": {"all": True, "excluded": []}},
            )
            for action in (
                "delete_tasks",
                "delete_annotations",
                "delete_tasks_annotations",
                "delete_tasks_predictions",
                "retrieve_tasks_predictions",
                "predictions_to_annotations",
                "remove_duplicates",
            )
        ),
        ("POST", f"/api/dm/views/reset/?project={p}", {}),
        # users, organizations, invites, tokens
        ("GET", f"/api/users/{service}/", None),
        ("PATCH", f"/api/users/{me.user_id}/", {"first_name": "x", "email": "admin@medgen.local"}),
        ("GET", f"/api/organizations/{me.org_id}/memberships", None),
        ("PATCH", f"/api/organizations/{me.org_id}", {"title": "x"}),
        ("GET", "/api/invite", None),
        ("POST", "/api/invite/reset-token", {}),
        ("GET", "/api/token/", None),
        ("POST", "/api/token/", {}),
        ("POST", "/api/jwt/settings", {"api_tokens_enabled": True, "legacy_api_tokens_enabled": True}),
        ("POST", "/api/current-user/reset-token/", {}),
        ("GET", "/api/current-user/token", None),
        # the Django admin and everything else nobody listed for labeling
        ("GET", "/admin/", None),
        ("GET", "/admin/users/user/", None),
        ("GET", "/django-rq/", None),
        ("GET", "/docs/api/schema/", None),
        ("GET", "/metrics/", None),
        ("POST", "/api/labels/", {"title": "x", "value": {}}),
    ]


def _prediction(team: Team, name: str) -> int:
    service = connect(team.ws).queue(name)
    return int(service.client.tasks.get(team.tasks[name][0]).predictions[0].id)  # the pre-fill


LOCAL_FILES = (
    "labelstudio/credentials.json",
    "../labelstudio/credentials.json",
    "images/../../labelstudio/credentials.json",
    "../catalog.sqlite",
    "../workspace.json",
    "{root}/labelstudio/credentials.json",
    "%2F{root}%2Flabelstudio%2Fcredentials.json",
)


def _clients(team: Team, name: str) -> dict[str, httpx.Client]:
    """The person's browser session (through the login form) and their API token."""
    account = team.creds.accounts[name]
    token = httpx.Client(
        base_url=team.url,
        headers={"Authorization": f"Token {account.token}"},
        timeout=60,
        follow_redirects=False,
    )
    session = login(team.url, account.email, account.password)
    session.follow_redirects = False
    return {"session": session, "token": token}


@pytest.mark.parametrize("name", ["ann1", "adjudicator"])
def test_every_forbidden_try_is_refused_and_changes_nothing(team, name) -> None:
    before = server_state(team)
    secrets = [team.creds.password, team.creds.token, *(a.password for a in team.creds.accounts.values())]
    refused, tried = [], 0
    tries = attempts(team, name)  # before any try: a try that got through may delete what others name
    for mode, client in _clients(team, name).items():
        for method, path, body in tries:
            response = client.request(method, path, json=body)
            tried += 1
            if response.status_code != 403:
                refused.append(f"{mode} {method} {path} -> {response.status_code} {response.text[:120]}")
        for path in LOCAL_FILES:  # reading the workspace's own files through local-files serving
            url = "/data/local-files/?d=" + path.format(root=str(team.ws.root).lstrip("/"))
            response = client.get(url)
            tried += 1
            if response.status_code == 200 or any(secret in response.text for secret in secrets):
                refused.append(f"{mode} GET {url} -> {response.status_code}")
    assert tried > 2 * 80
    assert refused == [], "\n".join(refused)
    assert server_state(team) == before  # projects, configs, tasks, annotations, storages... unchanged


def test_nothing_outside_served_is_readable_even_for_the_admin(team) -> None:
    """The document root is the image store: no storage, not even the admin's, reaches the credentials."""
    admin = httpx.Client(
        base_url=team.url, headers={"Authorization": f"Token {team.creds.token}"}, timeout=60
    )
    service = httpx.Client(
        base_url=team.url,
        headers={"Authorization": f"Token {team.creds.accounts['ann1'].service_token}"},
        timeout=60,
    )
    made = service.post(
        "/api/storages/localfiles/",
        json={"project": team.projects["ann1"], "path": str(team.ws.labelstudio_dir), "title": "x"},
    )
    assert made.status_code == 400 and "LOCAL_FILES_DOCUMENT_ROOT" in made.text  # outside the document root
    assert json.loads(admin.get("/api/current-user/whoami").text)["email"] == team.creds.username
    assert team.ws.store.root == team.ws.served_dir
    assert not any(p.name in ("labelstudio", "catalog.sqlite") for p in team.ws.served_dir.iterdir())


@pytest.mark.parametrize("mode", ["session", "token"])
def test_labeling_still_works_for_the_weakest_role(team, mode) -> None:
    """Read the queue and its pre-fills, answer, update, draft, skip, delete one's own answer."""
    client = _clients(team, "ann1")[mode]
    project, task = team.projects["ann1"], team.tasks["ann1"][3]
    listed = client.get("/api/projects/").json()["results"]
    assert [p["id"] for p in listed] == [project]
    detail = client.get(f"/api/tasks/{task}/")
    assert detail.status_code == 200 and detail.json()["predictions"], "the pre-fill is shown"
    assert client.get(f"/api/projects/{project}/next/").status_code == 200
    users = client.get(f"/api/users/?project={project}").json()
    assert [u["email"] for u in users] == [team.creds.accounts["ann1"].email]  # nobody else is listed
    assert client.get(f"/api/ml/?project={project}").json() == []
    made = client.post(
        f"/api/tasks/{task}/annotations/?project={project}", json={**ANSWER, "project": project}
    )
    assert made.status_code == 201, made.text
    annotation = made.json()["id"]
    assert (
        client.patch(f"/api/annotations/{annotation}/", json={**ANSWER, "lead_time": 3.0}).status_code == 200
    )
    draft = client.post(f"/api/tasks/{task}/drafts", json={**ANSWER, "lead_time": 1.0})
    assert draft.status_code == 201, draft.text
    assert client.delete(f"/api/drafts/{draft.json()['id']}/").status_code == 204
    skipped = client.post(
        f"/api/tasks/{team.tasks['ann1'][4]}/annotations/", json={"result": [], "was_cancelled": True}
    )
    assert skipped.status_code == 201 and skipped.json()["was_cancelled"]
    assert client.delete(f"/api/annotations/{annotation}/").status_code == 204
    assert client.delete(f"/api/annotations/{skipped.json()['id']}/").status_code == 204
    if mode == "session":  # the task's images are served to the person's browser
        image = detail.json()["data"]["A"]
        assert image.startswith("/data/local-files/?d=images/") and client.get(image).status_code == 200
        assert client.get("/user/account/").headers["location"] == "/medgen/password/"


def test_a_person_changes_their_own_password(team) -> None:
    account = team.creds.accounts["ann3"]
    session = login(team.url, account.email, account.password)
    page = session.get("/medgen/password/")
    assert page.status_code == 200 and "Change your password" in page.text
    forged = session.post(
        "/medgen/password/",
        data={"old_password": account.password, "new_password1": "x" * 16, "new_password2": "x" * 16},
    )
    assert forged.status_code == 403  # no CSRF token: refused, unlike Label Studio's own API
    new = "a-new-secret-" + os.urandom(4).hex()
    changed = session.post(
        "/medgen/password/",
        data={
            "old_password": account.password,
            "new_password1": new,
            "new_password2": new,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{team.url}/medgen/password/"},
    )
    assert changed.status_code == 200 and "Your password was changed" in changed.text
    assert session.get("/api/current-user/whoami").status_code == 200  # still logged in here
    assert (
        login(team.url, account.email, new).get("/api/current-user/whoami").json()["email"] == account.email
    )
    with pytest.raises(AssertionError, match="login of"):
        login(team.url, account.email, account.password)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("admin", "reserved for medgen's own logins"),
        ("Admin,ann9", "reserved for medgen's own logins"),
        ("adjudicator", "reserved for medgen's own logins"),
        ("reviewer", "reserved for medgen's own logins"),
        ("medgen", "reserved for medgen's own logins"),
        ("ANN1,ann1", "'ANN1' and 'ann1' differ only by case"),
    ],
)
def test_names_of_medgens_own_logins_or_equal_but_for_case_are_refused(
    runner, workspace, names, message
) -> None:
    from medgen.cli import app

    result = runner.invoke(app, ["annotate", "push", "-w", str(workspace.root), "--annotators", names])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_a_name_equal_to_an_existing_login_but_for_case_is_refused(team, runner) -> None:
    from medgen.cli import app

    result = runner.invoke(app, ["annotate", "push", "-w", str(team.ws.root), "--annotators", "ann1,ANN2"])
    assert result.exit_code == 1, result.output
    assert "'ann2' and 'ANN2' differ only by case" in result.output
    assert "ANN2" not in load_credentials(team.ws).accounts


def test_a_workspace_from_a_medgen_without_roles_is_upgraded_by_serve(tmp_path, runner) -> None:
    """Format 1 (images/ beside labelstudio/), storages over it, service logins without the managers group,
    and a server started without the role check: refused until restarted; `serve` upgrades it all once."""
    import sqlite3 as sqlite

    from medgen.cli import app
    from medgen.files import atomic_write_text
    from medgen.workspace import open_workspace

    ws = init_workspace(tmp_path / "old")
    seed_labelstudio(ws)
    serve(ws)
    add_sources(ws, 2)
    push(ws, connect(ws), PushConfig(annotators=["ann1"]))
    task = ws.catalog.query("SELECT ls_task_id FROM tasks")[0][0]
    info = (ws.labelstudio_dir / "server.json").read_text()
    atomic_write_text(ws.labelstudio_dir / "server.json", info.replace('"roles": true', '"roles": false'))
    with pytest.raises(Exception, match="started by a medgen without roles.*restart it"):
        connect(ws)  # a server without the role check is refused until restarted: nothing is lost
    stop(ws)
    root = ws.root
    ws.close()
    # Age it: what a medgen without roles left behind.
    (root / "served" / "images").rename(root / "images")
    (root / "served").rmdir()
    marker = json.loads((root / "workspace.json").read_text())
    atomic_write_text(root / "workspace.json", json.dumps({**marker, "format": 1}))
    creds = json.loads((root / "labelstudio" / "credentials.json").read_text())
    creds.pop("roles_version")
    atomic_write_text(root / "labelstudio" / "credentials.json", json.dumps(creds))
    os.chmod(root / "labelstudio" / "credentials.json", 0o600)
    with (
        contextlib.closing(sqlite.connect(root / "labelstudio" / "data" / "label_studio.sqlite3")) as conn,
        conn,
    ):
        conn.execute("UPDATE io_storages_localfilesmixin SET path = ?", (str(root / "images"),))
        conn.execute("DELETE FROM htx_user_groups")

    ws = open_workspace(root)  # the store moves into served/
    try:
        served = runner.invoke(app, ["annotate", "serve", "-w", str(root)])
        assert served.exit_code == 0, served.output
        assert "upgraded the server's data to medgen's roles" in served.output
        creds = load_credentials(ws)
        session = login(connect(ws).url, creds.accounts["ann1"].email, creds.accounts["ann1"].password)
        image = session.get(f"/api/tasks/{task}/").json()["data"]["A"]
        assert session.get(image).status_code == 200  # the storage follows the store into served/
        assert session.post("/api/projects/", json={"title": "x"}).status_code == 403
        add_sources(ws, 1, start=2)
        pushed = runner.invoke(app, ["annotate", "push", "-w", str(root), "--annotators", "ann1"])
        assert pushed.exit_code == 0, pushed.output  # the service login manages the queue again
        assert runner.invoke(app, ["annotate", "pull", "-w", str(root)]).exit_code == 0
    finally:
        stop(ws)
        ws.close()
