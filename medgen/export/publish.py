"""Publish an export version to the Hugging Face Hub as a dataset repo, tagged with the version.

The token comes from ``HF_TOKEN`` or the usual ``hf auth login``; ``huggingface_hub`` reads it
itself, so medgen never holds, prints or writes it. A tag that already exists is never moved:
versions are immutable on the Hub as they are in the workspace.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medgen.errors import MedgenError, one_line
from medgen.export.layout import DATA_DIR, MANIFEST
from medgen.export.tables import add_publication

if TYPE_CHECKING:
    from medgen.workspace import Workspace

REPO_PATTERN = r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*"


@dataclass
class PublishPlan:
    """What ``publish`` uploads (or would upload, with ``dry_run``) and what it did."""

    repo: str
    version: str
    folder: Path
    files: list[tuple[str, int]]
    private: bool
    dry_run: bool
    repo_exists: bool | None = None  # None: the Hub could not be asked
    existing_tags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commit: str | None = None
    url: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def _export_folder(workspace: Workspace, version: str) -> Path:
    folder = workspace.exports_dir / version
    if not (folder / MANIFEST).is_file() or not (folder / DATA_DIR).is_dir():
        known = sorted(p.name for p in workspace.exports_dir.glob("*") if (p / MANIFEST).is_file())
        raise MedgenError(
            f"no export {version} in {workspace.exports_dir} (exports: {', '.join(known) or 'none'}): "
            f"run `medgen export --version {version}` first"
        )
    return folder


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean 'the Hub refused or could not be reached', whichever HTTP client the Hub library uses."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[BaseException]] = [HfHubHTTPError, OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _remote_tags(api: Any, repo: str) -> tuple[bool, list[str]]:
    """(repo exists, its tags); raises the Hub's error when the Hub cannot be asked."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = api.list_repo_refs(repo, repo_type="dataset")
    except RepositoryNotFoundError:
        return False, []
    return True, sorted(tag.name for tag in refs.tags)


def publish_export(
    workspace: Workspace,
    repo: str,
    version: str,
    private: bool = False,
    dry_run: bool = False,
    api: Any = None,
) -> PublishPlan:
    """Upload ``exports/<version>`` to the dataset repo ``repo`` and tag the commit ``version``.

    Args:
        workspace: The workspace holding the export.
        repo: ``ORG/NAME`` of the Hub dataset repo (created when missing).
        version: The export version; also the tag, which must not exist yet.
        private: Create the repo private (an existing repo keeps its visibility).
        dry_run: Only list the files and the tag that would be created.
        api: An ``huggingface_hub.HfApi`` (tests pass a fake); default a new one.

    Raises:
        MedgenError: no such export, bad repo id, tag exists, no token, or the Hub failed.
    """
    from huggingface_hub import HfApi, get_token

    if not re.fullmatch(REPO_PATTERN, repo):
        raise MedgenError(f"--repo {repo!r} must be a Hub dataset id ORG/NAME, e.g. my-org/medgen-screening")
    folder = _export_folder(workspace, version)
    files = sorted(
        (path.relative_to(folder).as_posix(), path.stat().st_size)
        for path in folder.rglob("*")
        if path.is_file()
    )
    plan = PublishPlan(
        repo=repo, version=version, folder=folder, files=files, private=private, dry_run=dry_run
    )
    if api is None:
        if get_token() is None and not dry_run:
            raise MedgenError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then retry")
        api = HfApi()
    try:
        plan.repo_exists, plan.existing_tags = _remote_tags(api, repo)
    except _hub_errors() as error:
        if not dry_run:
            raise MedgenError(f"cannot check {repo}'s tags on the Hub: {one_line(error)}") from None
        plan.notes.append(f"the Hub did not answer ({one_line(error)}): existing tags not checked")
    if plan.repo_exists and private:
        plan.notes.append(f"{repo} already exists: its visibility is left as it is")
    if version in plan.existing_tags:
        raise MedgenError(
            f"tag {version} already exists on {repo}; published versions are immutable: export and publish a new --version"
        )
    if dry_run:
        return plan
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo,
            folder_path=folder,
            repo_type="dataset",
            commit_message=f"medgen export {version}",
            # Shards of an earlier version that this one does not have must not linger under data/.
            delete_patterns=[f"{DATA_DIR}/*"],
        )
        api.create_tag(
            repo,
            tag=version,
            tag_message=f"medgen export {version}",
            revision=commit.oid,
            repo_type="dataset",
        )
    except _hub_errors() as error:
        raise MedgenError(f"publishing {version} to {repo} failed: {one_line(error)}") from None
    plan.commit = commit.oid
    plan.url = f"https://huggingface.co/datasets/{repo}/tree/{version}"
    _record(workspace, plan)
    return plan


def _record(workspace: Workspace, plan: PublishPlan) -> None:
    add_publication(workspace, plan.version, {"repo": plan.repo, "tag": plan.version, "commit": plan.commit})
