"""Any existing Label Studio (`--url`): a personal access token, a server that does not share this disk."""

from __future__ import annotations

import httpx
import pytest

from annotation.client import connect
from annotation.server import load_credentials, serve, stop
from annotation.simulate import simulate_annotators
from medgen.cli import app
from medgen.workspace import init_workspace
from tests.annotation.conftest import add_sources, seed_labelstudio

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


@pytest.fixture
def remote(tmp_path_factory):
    """A server with its own document root, nowhere near the pushing workspace; yields (url, PAT, its workspace)."""
    host = init_workspace(tmp_path_factory.mktemp("elsewhere") / "server")
    seed_labelstudio(host)
    info = serve(host)
    legacy = {"Authorization": f"Token {load_credentials(host).token}"}
    httpx.post(
        f"{info.url}/api/jwt/settings",
        json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True},
        headers=legacy,
    ).raise_for_status()
    pat = httpx.post(f"{info.url}/api/token/", headers=legacy).json()["token"]
    assert pat.startswith("eyJ") and pat.count(".") == 2  # a JWT refresh token, not a legacy token
    yield info.url, pat, host
    stop(host)
    host.close()


def test_url_with_a_personal_access_token_and_uploaded_images(remote, tmp_path, runner, monkeypatch) -> None:
    url, pat, _ = remote
    ws = init_workspace(tmp_path / "ws")
    add_sources(ws, 4)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", pat)
    monkeypatch.setenv("LABEL_STUDIO_URL", url)  # found in the environment: used, and named
    w = ["-w", str(ws.root)]
    pushed = runner.invoke(app, ["annotate", "push", *w, "--annotators", "a,b", "--overlap", "2"])
    assert pushed.exit_code == 0, pushed.output
    assert f"Label Studio at {url} (from $LABEL_STUDIO_URL)" in pushed.output
    assert "queues are not blind" in pushed.output
    assert pat not in pushed.output

    connection = connect(ws)
    assert connection.document_root is None and connection.origin == "$LABEL_STUDIO_URL"
    # Every image of every task is served by that server (uploaded once, not read from this disk).
    uploads = ws.catalog.count("ls_uploads")
    assert uploads == 4 * 5
    headers = connection.client._client_wrapper.get_headers()
    for task in connection.client.tasks.list(
        project=ws.catalog.query("SELECT ls_project_id FROM ls_projects")[0][0]
    ):
        for key in ("original", "A", "B", "C", "D"):
            assert task.data[key].startswith("/data/upload/")
            image = httpx.get(url + task.data[key], headers={"Authorization": headers["Authorization"]})
            assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    again = runner.invoke(app, ["annotate", "push", *w, "--annotators", "a,b", "--overlap", "2"])
    assert again.exit_code == 0 and ws.catalog.count("ls_uploads") == uploads  # nothing uploaded twice

    monkeypatch.setattr("annotation.simulate.CHUNK", 3)  # answers sent a few at a time: every task still once
    assert simulate_annotators(ws, connection, noise=0.0) == {"a": 4, "b": 4}
    pulled = runner.invoke(app, ["annotate", "pull", *w])
    assert pulled.exit_code == 0 and "new 8" in pulled.output, pulled.output
    status = runner.invoke(app, ["annotate", "status", *w])
    assert status.exit_code == 0 and "remaining" in status.output
    agreed = runner.invoke(app, ["annotate", "agreement", *w])
    assert agreed.exit_code == 0 and "consensus 4 source(s)" in agreed.output, agreed.output

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", pat[:-4] + "AAAA")  # a forged signature
    refused = runner.invoke(app, ["annotate", "pull", *w])
    assert (
        refused.exit_code == 1
        and "refused the API token" in refused.output
        and "Traceback" not in refused.output
    )


def test_server_down_mid_pull_is_one_line_and_a_rerun_completes(remote, tmp_path, monkeypatch) -> None:
    from annotation.pull import pull
    from annotation.push import PushConfig, push
    from medgen.errors import MedgenError

    url, pat, host = remote
    ws = init_workspace(tmp_path / "ws")
    add_sources(ws, 3)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", pat)
    connection = connect(ws, url=url)
    push(ws, connection, PushConfig(annotators=["a", "b"], overlap=2))
    simulate_annotators(ws, connection, noise=0.0)
    with pytest.raises(MedgenError, match="unreachable") as error:
        pull(ws, connection, on_project=lambda name: name == "b" and stop(host))  # dies after a's project
    assert "\n" not in str(error.value)
    assert ws.catalog.count("annotations") == 3  # a's project was committed before the server died
    serve(host, port=int(url.rsplit(":", 1)[1]))
    resumed = pull(ws, connect(ws, url=url))
    assert (resumed.new, resumed.unchanged) == (3, 3)  # the rerun goes on with b's
