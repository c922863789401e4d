"""How a Label Studio server reads the workspace's images: from this disk, or uploaded once.

The workspace's own server, or a ``--url`` server given ``--document-root``, reads them through its
local-files storage (``/data/local-files/?d=...``). Any other server does not share this disk: each
image is uploaded once through Label Studio's import API into a ``medgen images`` project of the
token's organization (without creating tasks), and the catalog remembers its URL per server, so a
rerun uploads nothing twice and a crash loses at most the batch in flight.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from annotation.client import Connection, api_error
from annotation.tables import record_uploads
from annotation.tables import uploaded as uploaded_urls
from medgen.errors import MedgenError
from medgen.workspace import Workspace

STORE_TITLE = "medgen images"
STORE_CONFIG = '<View><Image name="image" value="$image"/></View>'
BATCH = 50  # files per upload request


def _store_project(connection: Connection) -> int:
    try:
        found = [p for p in connection.client.projects.list(title=STORE_TITLE) if p.title == STORE_TITLE]
        project = (
            found[0]
            if found
            else connection.client.projects.create(
                title=STORE_TITLE,
                description="Images uploaded by medgen for its annotation projects: no tasks here.",
                label_config=STORE_CONFIG,
            )
        )
    except Exception as error:
        raise api_error("preparing the image upload project", error) from None
    return int(project.id)


def image_urls(connection: Connection, workspace: Workspace, keys: Sequence[str]) -> dict[str, str]:
    """URL of each image store key as ``connection``'s server reads it (uploading what it lacks)."""
    if connection.document_root is not None:
        return {key: connection.image_url(workspace.store.path(key)) for key in keys}
    known = uploaded_urls(workspace, connection.url, keys)  # this batch's keys only
    missing = sorted(set(keys) - set(known))
    if missing:
        project_id = _store_project(connection)
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            names = {key.rsplit("/", 1)[-1]: key for key in batch}  # <sha256>.<ext>: unique per content
            files = [
                (f"file{i}", (name, workspace.store.path(key).read_bytes(), "application/octet-stream"))
                for i, (name, key) in enumerate(names.items())
            ]
            answer = connection.post_files(
                f"/api/projects/{project_id}/import?commit_to_project=false", files
            )
            ids = answer.get("file_upload_ids") or []
            uploaded = connection.get_json(f"/api/projects/{project_id}/file-uploads", ids=json.dumps(ids))
            urls = {}
            for item in uploaded:
                name = str(item["file"]).rsplit("/", 1)[-1].split("-", 1)[-1]  # '<uuid8>-<name>'
                if name in names:
                    urls[names[name]] = "/data/" + str(item["file"])
            if len(urls) != len(batch):
                raise MedgenError(
                    f"Label Studio kept {len(urls)} of {len(batch)} uploaded images: rerun push"
                )
            record_uploads(workspace, connection.url, urls)
            known.update(urls)
    return {key: known[key] for key in keys}
