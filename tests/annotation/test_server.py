"""`medgen annotate serve` itself, and a server that is down or dies in the middle of a push."""

from __future__ import annotations

import os
import stat

import pytest

from annotation.client import connect
from annotation.push import PushConfig, _task_payload, push
from annotation.server import load_credentials, load_server, serve, stop
from medgen.cli import app
from medgen.errors import MedgenError
from medgen.workspace import init_workspace
from tests.annotation.conftest import add_sources, seed_labelstudio

pytestmark = pytest.mark.labelstudio


def test_unreachable_url_and_missing_token_are_clear_errors(workspace, runner, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    result = runner.invoke(
        app, ["annotate", "pull", "-w", str(workspace.root), "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1 and "LABEL_STUDIO_API_KEY" in result.output
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret-token-value")
    result = runner.invoke(
        app, ["annotate", "pull", "-w", str(workspace.root), "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1 and "does not answer" in result.output
    assert "secret-token-value" not in result.output
    result = runner.invoke(app, ["annotate", "push", "-w", str(workspace.root)])
    assert result.exit_code == 1 and "no Label Studio is running" in result.output
    assert "Traceback" not in result.output


def _push_until_the_server_dies(ws, config: PushConfig) -> None:
    def stop_after_first_batch(n: int) -> None:
        stop(ws)

    with pytest.raises(MedgenError, match="unreachable|does not answer"):
        push(ws, connect(ws), config, on_batch=stop_after_first_batch)


@pytest.mark.slow
def test_serve_once_hide_token_survive_a_dying_server_and_stop(ls_root, runner):
    """One server life cycle (starts are slow): serve via the CLI, crash it mid-push, restart, finish, stop."""
    ws = init_workspace(ls_root / "served")
    seed_labelstudio(ws)
    sources = add_sources(ws, 6)
    token = load_credentials(ws).token
    try:
        result = runner.invoke(app, ["annotate", "serve", "-w", str(ws.root)])
        assert result.exit_code == 0, result.output
        assert "running at http://127.0.0.1:" in result.output
        assert token not in result.output and token[:4] in result.output
        assert stat.S_IMODE(os.stat(ws.labelstudio_dir / "credentials.json").st_mode) == 0o600
        again = runner.invoke(app, ["annotate", "serve", "-w", str(ws.root)])
        assert again.exit_code == 1 and "already running" in again.output

        config = PushConfig(annotators=["a", "b"], overlap=1, batch_size=2)
        _push_until_the_server_dies(ws, config)
        assert ws.catalog.count("tasks") == 2 and load_server(ws) is None

        serve(ws)
        connection = connect(ws)
        # A crash after Label Studio imported a task but before the catalog recorded it:
        project_id = ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE annotator = 'b'")[0][0]
        planned = ws.catalog.query(
            "SELECT source_id FROM task_plan WHERE annotator = 'b' AND source_id NOT IN (SELECT source_id FROM tasks) "
            "ORDER BY rank LIMIT 1"
        )[0]["source_id"]
        payload = _task_payload(connection, ws, planned, ws.catalog.candidates(planned), None)
        connection.queue("b").client.projects.import_tasks(project_id, request=[payload])  # b's organization

        result = runner.invoke(
            app, ["annotate", "push", "-w", str(ws.root), "--annotators", "a,b", "--batch-size", "2"]
        )
        assert result.exit_code == 0, result.output
        assert "recorded 1 task(s) an interrupted push had imported" in result.output
        rows = ws.catalog.query("SELECT source_id, ls_project_id FROM tasks")
        assert sorted(r["source_id"] for r in rows) == sorted(sources)  # overlap 1: each source exactly once
        for project in {r["ls_project_id"] for r in rows}:
            on_server = [
                t.data["source_id"] for t in connection.client.tasks.list(project=project, page_size=100)
            ]
            assert len(on_server) == len(set(on_server)) == sum(r["ls_project_id"] == project for r in rows)

        status = runner.invoke(app, ["annotate", "status", "-w", str(ws.root)])
        assert status.exit_code == 0 and "remaining" in status.output
        pid = load_server(ws).pid
    finally:
        stopped = runner.invoke(app, ["annotate", "serve", "--stop", "-w", str(ws.root)])
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    assert load_server(ws) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    ws.close()


@pytest.mark.slow
def test_new_workspaces_start_from_a_migrated_template_without_users(tmp_path, monkeypatch):
    import sqlite3

    from annotation.server import DATABASE, PASSED_ENV, Paths, migrated_template

    monkeypatch.setenv("MEDGEN_CACHE", str(tmp_path / "cache"))
    template = migrated_template({key: os.environ[key] for key in PASSED_ENV if key in os.environ})
    assert template is not None and template.is_relative_to(tmp_path / "cache")
    with sqlite3.connect(template) as conn:  # the schema only: no account or token is shared
        assert conn.execute("SELECT COUNT(*) FROM htx_user").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM authtoken_token").fetchone() == (0,)
    ws = init_workspace(tmp_path / "ws")
    try:
        info = serve(ws)  # the workspace's own token is checked against the server before this returns
        log = Paths(ws.labelstudio_dir).log.read_text()
        assert "Initializing database" not in log, "started from the template, nothing left to migrate"
        with sqlite3.connect(ws.labelstudio_dir / "data" / DATABASE) as conn:
            assert conn.execute("SELECT email FROM htx_user").fetchall() == [(load_credentials(ws).username,)]
        assert info.url.startswith("http://127.0.0.1:")
    finally:
        stop(ws)
        ws.close()


def test_an_unreachable_database_is_refused_and_not_remembered(workspace):
    with pytest.raises(
        MedgenError, match=r"PostgreSQL at postgresql://u:\*\*\*@127.0.0.1:9/db is unreachable"
    ):
        serve(workspace, database="postgresql://u:secret@127.0.0.1:9/db")
    assert load_credentials(workspace).database is None  # the next serve is not stuck on it
    with pytest.raises(MedgenError, match="is not a PostgreSQL URL"):
        serve(workspace, database="mysql://u:secret@127.0.0.1/db")
    assert load_server(workspace) is None
