"""`medgen publish`: dry run, tag refusal and the upload calls, against a fake Hub API (no Hub is reachable here)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from huggingface_hub.errors import RepositoryNotFoundError

from medgen.cli import app
from medgen.errors import MedgenError
from medgen.export.config import ExportConfig
from medgen.export.dataset import export_dataset
from medgen.export.publish import publish_export
from medgen.workspace import Workspace
from tests.medgen.export.test_export import populate


@dataclass
class FakeHub:
    """Just enough of ``HfApi``: repos with files and tags, and a log of every call."""

    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def list_repo_refs(self, repo_id: str, *, repo_type: str) -> Any:
        self.calls.append("list_repo_refs")
        assert repo_type == "dataset"
        if repo_id not in self.repos:
            request = httpx.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}/refs")
            raise RepositoryNotFoundError(
                "Repository Not Found", response=httpx.Response(404, request=request)
            )
        return SimpleNamespace(tags=[SimpleNamespace(name=tag) for tag in self.repos[repo_id]["tags"]])

    def create_repo(self, repo_id: str, *, repo_type: str, private: bool, exist_ok: bool) -> None:
        self.calls.append("create_repo")
        assert repo_type == "dataset" and exist_ok
        self.repos.setdefault(repo_id, {"tags": {}, "files": {}, "private": private, "commits": 0})

    def upload_folder(
        self,
        *,
        repo_id: str,
        folder_path: Path,
        repo_type: str,
        commit_message: str,
        delete_patterns: list[str],
    ) -> Any:
        self.calls.append("upload_folder")
        repo = self.repos[repo_id]
        assert delete_patterns == ["data/*"]
        repo["files"] = {k: v for k, v in repo["files"].items() if not k.startswith("data/")}
        for path in Path(folder_path).rglob("*"):
            if path.is_file():
                repo["files"][path.relative_to(folder_path).as_posix()] = path.stat().st_size
        repo["commits"] += 1
        return SimpleNamespace(oid=f"commit{repo['commits']}")

    def create_tag(self, repo_id: str, *, tag: str, tag_message: str, revision: str, repo_type: str) -> None:
        self.calls.append("create_tag")
        assert tag not in self.repos[repo_id]["tags"], "the Hub refuses an existing tag"
        self.repos[repo_id]["tags"][tag] = revision


@pytest.fixture
def exported(workspace: Workspace) -> Workspace:
    populate(workspace, 4)
    export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    return workspace


def test_dry_run_lists_files_and_uploads_nothing(exported: Workspace) -> None:
    hub = FakeHub()
    plan = publish_export(exported, "org/bench", "v1", private=True, dry_run=True, api=hub)
    names = [name for name, _ in plan.files]
    assert {"README.md", "manifest.json", "changelog.md", "samples.png"} <= set(names)
    assert any(name.startswith("data/train-") and name.endswith(".parquet") for name in names)
    assert plan.repo_exists is False and plan.total_bytes > 0
    assert hub.calls == ["list_repo_refs"] and not hub.repos


def test_publish_uploads_tags_and_refuses_an_existing_tag(exported: Workspace) -> None:
    hub = FakeHub()
    plan = publish_export(exported, "org/bench", "v1", api=hub)
    assert hub.calls == ["list_repo_refs", "create_repo", "upload_folder", "create_tag"]
    assert hub.repos["org/bench"]["tags"] == {"v1": "commit1"} and plan.commit == "commit1"
    assert "README.md" in hub.repos["org/bench"]["files"]
    summary = json.loads(
        exported.catalog.query("SELECT summary FROM exports WHERE version = 'v1'")[0]["summary"]
    )
    assert summary["published"] == [{"repo": "org/bench", "tag": "v1", "commit": "commit1"}]

    hub.calls.clear()
    with pytest.raises(MedgenError, match="tag v1 already exists on org/bench"):
        publish_export(exported, "org/bench", "v1", api=hub)
    with pytest.raises(MedgenError, match="already exists"):
        publish_export(exported, "org/bench", "v1", dry_run=True, api=hub)
    assert "upload_folder" not in hub.calls and hub.repos["org/bench"]["commits"] == 1


def test_publish_refuses_bad_input(exported: Workspace) -> None:
    with pytest.raises(MedgenError, match=r"no export v9 .*\(exports: v1\)"):
        publish_export(exported, "org/bench", "v9", dry_run=True, api=FakeHub())
    with pytest.raises(MedgenError, match="ORG/NAME"):
        publish_export(exported, "not-a-repo", "v1", dry_run=True, api=FakeHub())


def test_publish_without_token_fails_cleanly(exported: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(MedgenError, match="no Hugging Face token: set HF_TOKEN"):
        publish_export(exported, "org/bench", "v1")


def test_publish_cli_dry_run_offline_never_prints_the_token(
    exported: Workspace, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hf_" + uuid.uuid4().hex
    monkeypatch.setenv("HF_TOKEN", secret)
    from huggingface_hub import constants

    monkeypatch.setattr(
        constants, "ENDPOINT", "http://127.0.0.1:9"
    )  # nothing listens: the Hub is unreachable
    result = runner.invoke(
        app, ["publish", "--repo", "org/bench", "--version", "v1", "--dry-run", "-w", str(exported.root)]
    )
    assert result.exit_code == 0, result.output
    assert (
        "would upload" in result.output and "create tag v1" in result.output and "README.md" in result.output
    )
    assert "tags not checked" in result.output
    real = runner.invoke(app, ["publish", "--repo", "org/bench", "--version", "v1", "-w", str(exported.root)])
    assert (
        real.exit_code == 1
        and "cannot check org/bench's tags on the Hub" in real.output
        and "Traceback" not in real.output
    )
    written = [p.read_bytes() for p in exported.root.rglob("*") if p.is_file()]
    assert all(secret.encode() not in data for data in written)
    assert secret not in result.output + real.output


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("MEDGEN_TEST_HUB_REPO") or not _hub_reachable(),
    reason="needs the Hub, a token and MEDGEN_TEST_HUB_REPO=ORG/NAME (a scratch dataset repo)",
)
def test_real_upload(exported: Workspace) -> None:
    from huggingface_hub import HfApi

    repo = os.environ["MEDGEN_TEST_HUB_REPO"]
    tag = f"test-{uuid.uuid4().hex[:8]}"
    export_dataset(exported, ExportConfig(version=tag, labels="injected"))
    plan = publish_export(exported, repo, tag, private=True)
    refs = HfApi().list_repo_refs(repo, repo_type="dataset")
    assert tag in {t.name for t in refs.tags} and plan.commit
    with pytest.raises(MedgenError, match="already exists"):
        publish_export(exported, repo, tag)
