"""The role check's cost on the labeling path (bar: ratio <= 1.05).

One workspace and one queue (ann1's), served twice from the same database: by the server `annotate
serve` starts (Label Studio's settings plus medgen's role middleware, ``annotation.ls_roles``), and by
a second Label Studio process on Label Studio's own settings (no role check). A labeling step is what
the labeling page asks when an annotator works through their queue: the next task
(``GET /api/projects/<id>/next/``), then the answer to it (``POST /api/tasks/<id>/annotations/``).
ann1 takes steps as themselves, half with their API token and half with their browser session
(logged in through the form), alternating between the servers A B B A so that drift on a shared
machine falls on both. Prints the median step of each and their ratio.

    .venv/bin/python benchmarks/role_check.py [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from annotation.client import connect
from annotation.config import label_result
from annotation.push import PushConfig, push
from annotation.server import _free_port, healthy, launch, load_credentials, serve, server_env, stop
from medgen.workspace import init_workspace
from schemas import CandidateLabel
from tests.annotation.conftest import add_sources, seed_labelstudio

LABEL_STUDIO_SETTINGS = "label_studio.core.settings.label_studio"


def _session(url: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60, follow_redirects=True)
    client.get("/user/login/")
    client.post(
        "/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{url}/user/login/"},
    )
    assert client.get("/api/current-user/whoami").status_code == 200
    return client


def _step(client: httpx.Client, project: int, answer: dict[str, object]) -> float:
    start = time.perf_counter()
    task = client.get(f"/api/projects/{project}/next/")
    task.raise_for_status()
    made = client.post(f"/api/tasks/{task.json()['id']}/annotations/", json={**answer, "project": project})
    made.raise_for_status()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=300, help="Labeling steps per server (half token, half session)."
    )
    args = parser.parse_args()
    answer = {"result": label_result([CandidateLabel(acceptable=True)] * 4), "lead_time": 5.0}
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        seed_labelstudio(ws)
        add_sources(ws, 2 * args.steps + 20)
        info = serve(ws)
        baseline = None
        try:
            push(ws, connect(ws), PushConfig(annotators=["ann1"]))
            creds = load_credentials(ws)
            assert creds is not None
            env = {
                **server_env(ws, creds, Path(info.document_root)),
                "DJANGO_SETTINGS_MODULE": LABEL_STUDIO_SETTINGS,
            }
            port = _free_port()
            baseline = launch(env, "127.0.0.1", port, ws.labelstudio_dir / "baseline.log")
            plain = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while not healthy(plain):
                if time.monotonic() > deadline or baseline.poll() is not None:
                    raise SystemExit(
                        f"the baseline Label Studio did not start: see {ws.labelstudio_dir / 'baseline.log'}"
                    )
                time.sleep(0.5)
            project = ws.catalog.query("SELECT ls_project_id FROM ls_projects")[0][0]
            account = creds.accounts["ann1"]
            servers = {"with": info.url, "without": plain}
            clients = {
                (name, mode): (
                    httpx.Client(
                        base_url=url, headers={"Authorization": f"Token {account.token}"}, timeout=60
                    )
                    if mode == "token"
                    else _session(url, account.email, account.password)
                )
                for name, url in servers.items()
                for mode in ("token", "session")
            }
            for client in clients.values():  # warm-up: first requests load code and fill caches
                for _ in range(3):
                    _step(client, project, answer)
            times: dict[str, list[float]] = {"with": [], "without": []}
            for i in range(args.steps):
                mode = "token" if i < args.steps // 2 else "session"
                order = ("with", "without") if i % 2 == 0 else ("without", "with")
                for name in order:
                    times[name].append(_step(clients[(name, mode)], project, answer))
            assert ws.catalog is not None
        finally:
            if baseline is not None:
                os.killpg(baseline.pid, signal.SIGTERM)
                baseline.wait(timeout=30)
            stop(ws)
            ws.close()
    with_check, without = statistics.median(times["with"]), statistics.median(times["without"])
    ratio = with_check / without
    verdict = "PASS" if ratio <= 1.05 else "FAIL"
    print(
        f"role_check: labeling step (next task + submit), median {1000 * with_check:.1f} ms with medgen's role "
        f"check, {1000 * without:.1f} ms without ({args.steps} steps each, half token, half session); "
        f"ratio {ratio:.3f} (bar 1.05 {verdict})"
    )


if __name__ == "__main__":
    main()
