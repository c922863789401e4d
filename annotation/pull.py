"""Fetch annotations from Label Studio (or an export file), validate them, store them in the catalog.

Idempotent by annotation id: an annotation seen before is stored again only when Label Studio
updated it. Every annotation gets a status (``annotation.validation``); those that are not valid
are listed with their reasons in ``reports/annotation_pull.json`` and kept out of consensus.

Streamed: a project's annotations are read from Label Studio's database a chunk at a time (ordered by
task, a task never split) and each chunk is validated and committed on its own, so memory stays flat
with the project's size and a pull killed at any point keeps what it committed; the rerun finds those
annotations unchanged and goes on.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.client import Connection, QueueMissing, project_exists
from annotation.consensus import labels_to_json
from annotation.ls_database import (
    CHUNK,
    Database,
    DatabaseUnavailable,
    count_project_db,
    holds_annotations,
    iter_project_db,
    project_exists_db,
)
from annotation.tables import (
    REQUIRED_REGIONS,
    REVIEW,
    Queue,
    account_ids,
    active_queues,
    annotations_not_used,
    begin_pull,
    lost_ranges,
    mark_unseen,
    queue_tasks,
    regions_by_project,
    rejected_among,
    review_task_ids,
    save_annotations,
    status_totals,
    stored_annotations,
    tasks_by_id,
)
from annotation.validation import (
    DELETED,
    DUPLICATE,
    FOREIGN,
    LOST,
    VALID,
    Checked,
    RawAnnotation,
    check,
    parse_export,
)
from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.workspace import Workspace
from medgen.workspace.catalog import now

REPORT = "annotation_pull.json"
LOST_REASON = (
    "gone with an older backup of Label Studio's database: `medgen annotate repair` imports it again"
)


@dataclass
class PullReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # stored before, deleted in Label Studio now
    lost: int = (
        0  # stored before, gone with an older backup of Label Studio's database (repair restores them)
    )
    statuses: Counter[str] = field(default_factory=Counter)  # of the annotations pulled now
    unknown_tasks: list[int] = field(default_factory=list)  # tasks this workspace did not push
    report_path: Path | None = None
    notes: list[str] = field(default_factory=list)  # fallbacks taken (database unreadable -> API)
    missing: list[QueueMissing] = field(default_factory=list)  # queues gone from the server: repair them


def fetch_project(connection: Connection, project_id: int, timeout: float = 1800.0) -> list[RawAnnotation]:
    """Every annotation of one project, cancelled ones included, through an export snapshot.

    Label Studio warns that its synchronous export can time out on large projects; a snapshot is
    built by the server (in the background where it runs workers), polled until complete,
    downloaded as JSON, and deleted.
    """
    base = f"/api/projects/{project_id}/exports"
    every = {"usual": True, "skipped": True, "ground_truth": True}
    snapshot = connection.post_json(f"{base}/", {"title": "medgen pull", "annotation_filter_options": every})
    try:
        deadline = time.monotonic() + timeout
        while snapshot.get("status") not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise MedgenError(
                    f"Label Studio's export of project {project_id} did not finish in {timeout:.0f} s"
                )
            time.sleep(0.5)
            snapshot = connection.get_json(f"{base}/{snapshot['id']}")
        if snapshot["status"] == "failed":
            raise MedgenError(f"Label Studio's export of project {project_id} failed: see the server's log")
        payload = connection.get_json(f"{base}/{snapshot['id']}/download", exportType="JSON")
    finally:
        with contextlib.suppress(MedgenError):
            connection.delete(f"{base}/{snapshot['id']}")
    return parse_export(payload)


def local_database(workspace: Workspace, connection: Connection) -> Database | None:
    """The database of the workspace's own server, when ``connection`` talks to it and its schema fits.

    Label Studio's export serialises every task through Django REST serializers (and the server does not
    run requests in parallel), while the same annotation rows read straight from its database take a
    fraction of the time (benchmarks/README.md, "Annotation"). Any other server (``--url``), a missing
    database, or a table without the expected columns falls back to the export API (None).

    Raises:
        DatabaseUnavailable: the database is locked or unreachable now.
    """
    from annotation.server import Paths, load_credentials, running_server

    info = running_server(workspace)
    if info is None or info.url.rstrip("/") != connection.url.rstrip("/"):
        return None
    creds = load_credentials(workspace)
    database: Database = (
        creds.database
        if creds is not None and creds.database
        else Paths(workspace.labelstudio_dir).data / "label_studio.sqlite3"
    )
    if isinstance(database, Path) and not database.is_file():
        return None
    return database if holds_annotations(database) else None


def by_task_chunks(raws: list[RawAnnotation], chunk: int | None = None) -> Iterator[list[RawAnnotation]]:
    """``raws`` (an export download or file) in chunks ordered by task, a task never split."""
    chunk = chunk or CHUNK
    ordered = sorted(raws, key=lambda raw: (raw.task_id, raw.id))
    start = 0
    while start < len(ordered):
        end = min(start + chunk, len(ordered))
        while end < len(ordered) and ordered[end].task_id == ordered[end - 1].task_id:
            end += 1
        yield ordered[start:end]
        start = end


def read_export_file(path: Path) -> list[RawAnnotation]:
    """Annotations from a file exported by Label Studio (JSON or JSON_MIN) or saved from its API."""
    try:
        payload: Any = json.loads(path.read_text())
        return parse_export(payload)
    except (OSError, ValueError) as error:
        raise MedgenError(f"cannot read Label Studio export {path}: {error}") from None


class DatabaseReader:
    """Annotations read straight from the workspace server's database (milliseconds, streamed)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def exists(self, queue: Queue) -> bool:
        return project_exists_db(self.database, queue.project_id)

    def count(self, queues: list[Queue]) -> int | None:
        with contextlib.suppress(DatabaseUnavailable):  # the bar has no total then; reading tries anyway
            return sum(count_project_db(self.database, queue.project_id) for queue in queues)
        return None

    def chunks(self, queue: Queue) -> Iterator[list[RawAnnotation]]:
        try:
            yield from iter_project_db(self.database, queue.project_id)
        except DatabaseUnavailable as error:
            raise MedgenError(
                f"Label Studio's database could not be read while pulling {queue.annotator}'s queue ({error}): "
                "rerun `medgen annotate pull` (what was pulled is kept)"
            ) from None


class ApiReader:
    """Annotations read through Label Studio's export API (any server), as each queue's service login."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def exists(self, queue: Queue) -> bool:
        return project_exists(self.connection.queue(queue.annotator), queue.project_id)

    def count(self, queues: list[Queue]) -> int | None:
        return None

    def chunks(self, queue: Queue) -> Iterator[list[RawAnnotation]]:
        yield from by_task_chunks(fetch_project(self.connection.queue(queue.annotator), queue.project_id))


def reader(workspace: Workspace, connection: Connection, notes: list[str]) -> DatabaseReader | ApiReader:
    """Where this pull reads annotations from, chosen once: the server's database when it is the workspace's
    own and readable now, else the export API (with a note when the database could not be read)."""
    try:
        database = local_database(workspace, connection)
    except DatabaseUnavailable as error:
        notes.append(f"Label Studio's database could not be read ({error}); used the export API")
        database = None
    return DatabaseReader(database) if database else ApiReader(connection)


def pull(
    workspace: Workspace,
    connection: Connection | None = None,
    export_files: list[Path] | None = None,
    on_project: Callable[[str], None] | None = None,
    on_start: Callable[[int | None], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PullReport:
    """Pull every queue this workspace pushed (and/or the given export files) into the catalog, in chunks.

    A queue whose project is gone from the server is named in ``report.missing`` and left as it is:
    what was pulled from it stays in the catalog, and `annotate repair` makes it again.
    ``on_start(total)``: annotations to read when Label Studio's database tells (else None);
    ``on_progress(n)`` after each committed chunk.
    """
    store = _Store(workspace)
    files = [raw for path in export_files or [] for raw in read_export_file(path)]
    notes: list[str] = []
    queues = [q for q in active_queues(workspace) if q.kind != REVIEW] if connection is not None else []
    source = reader(workspace, connection, notes) if connection is not None else None
    if on_start is not None:
        counted = source.count(queues) if source is not None and queues else 0
        on_start(None if counted is None else counted + len(files))
    for chunk in by_task_chunks(files):
        store.add(chunk)
        if on_progress:
            on_progress(len(chunk))
    for queue in queues:
        assert source is not None and connection is not None
        if on_project is not None:
            on_project(queue.annotator)
        if not source.exists(queue):
            store.report.missing.append(QueueMissing(queue.annotator, queue.project_id, connection.url))
            continue
        for chunk in source.chunks(queue):
            store.add(chunk)
            if on_progress:
                on_progress(len(chunk))
        store.complete(queue.project_id)
    report = store.finish()
    report.notes = notes
    return report


def _attribution(
    raws: list[RawAnnotation], tasks: dict[int, Any], owners: dict[str, int], emails: dict[int, str]
) -> dict[int, tuple[str, str]]:
    """Annotations that must not count although valid: (status, reason) by annotation id.

    - made by someone other than the annotator whose queue holds the task (known owners only);
    - an earlier annotation by the same person on the same task (the latest one counts).
    """
    found: dict[int, tuple[str, str]] = {}
    latest: dict[tuple[int, int | None], RawAnnotation] = {}
    for raw in sorted(raws, key=lambda r: r.id):
        task = tasks.get(raw.task_id)
        if task is None:
            continue
        owner = owners.get(task["annotator"])
        if owner is not None and raw.completed_by != owner:
            who = emails.get(raw.completed_by or -1, f"user {raw.completed_by}")
            found[raw.id] = (
                FOREIGN,
                f"made by {who}, not by {task['annotator']}, whose queue holds the task",
            )
            continue
        if raw.cancelled:
            continue
        key = (raw.task_id, raw.completed_by)
        earlier = latest.get(key)
        if earlier is not None:
            found[earlier.id] = (
                DUPLICATE,
                f"the same person annotated task {raw.task_id} again (annotation {raw.id} counts)",
            )
        latest[key] = raw
    return found


def _another(row: Any, raw: RawAnnotation) -> bool:
    """Whether the stored row under ``raw``'s id is a different annotation (of another task, or made at
    another time) whose id Label Studio gave again."""
    if int(row["ls_task_id"]) != raw.task_id:
        return True
    return (
        raw.created_at is not None and row["created_at"] is not None and row["created_at"] != raw.created_at
    )


class _Store:
    """Validates and upserts annotations chunk by chunk, one transaction each; finishes with the report.

    Each annotation is credited to the Label Studio user who made it: one made in a queue by anyone
    but its annotator is ``foreign``, and an earlier one by the same person on the same task is
    ``duplicate``; both are reported, neither is used. Chunks never split a task, so both checks see
    all of a task's annotations.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.report = PullReport()
        accounts = account_ids(workspace)
        self.owners = {name: user_id for name, _, user_id in accounts}
        self.emails = {user_id: email for _, email, user_id in accounts}
        self.regions = regions_by_project(workspace)
        begin_pull(workspace)

    def add(self, raws: list[RawAnnotation]) -> None:
        report = self.report
        unique = list({raw.id: raw for raw in raws}.values())  # a file and the server may both hold one
        tasks = tasks_by_id(self.workspace, [raw.task_id for raw in unique])
        stored = stored_annotations(self.workspace, [raw.id for raw in unique])
        # Label Studio on SQLite gives the ids of deleted annotations again (imports number from its highest
        # id): a stored row of another task, or made at another time, is another annotation: moved aside.
        reused = [raw.id for raw in unique if raw.id in stored and _another(stored[raw.id], raw)]
        seen = {i: (r["updated_at"], r["status"]) for i, r in stored.items() if i not in reused}
        overruled = _attribution(unique, tasks, self.owners, self.emails)
        rejected = rejected_among(self.workspace, [raw.id for raw in unique if raw.id in seen])
        rows = []
        for raw in unique:
            task = tasks.get(raw.task_id)
            if task is None:
                report.unknown_tasks.append(raw.task_id)
                continue
            if raw.id in rejected:  # a review rejected it: it stays out until its author answers again
                report.unchanged += 1
                continue
            checked = check(raw, self.regions.get(int(task["ls_project_id"])) == REQUIRED_REGIONS)
            if checked.status == VALID and raw.id in overruled:
                status, reason = overruled[raw.id]
                checked = Checked(status, [reason])
            if raw.id in seen and seen[raw.id] == (raw.updated_at, checked.status):
                report.unchanged += 1
                continue
            report.statuses[checked.status] += 1
            if raw.id in seen:
                report.updated += 1
            else:
                report.new += 1
            rows.append(
                (
                    raw.id,
                    raw.task_id,
                    int(task["ls_project_id"]),
                    task["annotator"],
                    task["source_id"],
                    checked.status,
                    json.dumps(checked.reasons),
                    labels_to_json(checked.labels) if checked.labels is not None else None,
                    raw.lead_time,
                    raw.created_at,
                    raw.updated_at,
                    now(),
                    raw.completed_by,
                )
            )
        replaced = [row[0] for row in rows if row[0] in seen]  # their versions before go to the history
        save_annotations(self.workspace, rows, replaced, reused, [raw.id for raw in unique])

    def complete(self, project_id: int) -> None:
        """Every annotation of ``project_id`` was added: a counted one not seen now is gone from Label Studio.

        It stays in the catalog with its labels, not counted, and its version before is kept in the
        history: ``lost`` when an older backup of Label Studio's database never held it (`annotate
        repair` imports it again), else ``deleted`` (its author, or an admin, deleted it).
        """
        # Only a counted annotation can turn lost or deleted; one already kept out keeps its reasons.
        lost, deleted = mark_unseen(
            self.workspace,
            project_id,
            VALID,
            [
                (LOST, LOST_REASON, lost_ranges(self.workspace, "task_completion")),
                (DELETED, "deleted in Label Studio after an earlier pull", None),
            ],
        )
        self.report.deleted += deleted
        self.report.lost += lost

    def finish(self) -> PullReport:
        self.report.report_path = write_report(self.workspace, self.report)
        return self.report


def store_annotations(
    workspace: Workspace, raws: list[RawAnnotation], complete_projects: list[int] | None = None
) -> PullReport:
    """Validate and upsert ``raws`` (by id) in chunks; write the report of every annotation that is not valid.

    ``complete_projects``: projects whose every annotation is in ``raws``; a stored annotation of
    theirs that is missing now was deleted in Label Studio and is marked ``deleted`` (kept, not used).
    """
    store = _Store(workspace)
    for chunk in by_task_chunks(raws):
        store.add(chunk)
    for project_id in complete_projects or []:
        store.complete(project_id)
    return store.finish()


def write_report(workspace: Workspace, report: PullReport) -> Path:
    """Every annotation in the catalog that is not valid, with its reasons (all pulls, not only this one)."""
    rejected = [
        {
            "annotation_id": r["ls_annotation_id"],
            "task_id": r["ls_task_id"],
            "project_id": r["ls_project_id"],
            "annotator": r["annotator"],
            "source_id": r["source_id"],
            "status": r["status"],
            "reasons": json.loads(r["reasons"]),
        }
        for r in annotations_not_used(workspace, VALID)
    ]
    totals = status_totals(workspace)
    body = {
        "pulled_at": now(),
        "this_pull": {
            "new": report.new,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "deleted": report.deleted,
            **report.statuses,
        },
        "catalog_totals": totals,
        "not_used": rejected,
        "unknown_tasks": sorted(set(report.unknown_tasks)),
    }
    path = workspace.reports_dir / REPORT
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path


@dataclass
class ProjectStatus:
    project_id: int
    kind: str
    annotator: str
    tasks: int
    done: int
    skipped: int
    remaining: int
    mean_seconds: float | None
    missing: bool = False  # the project is gone from the server: `annotate repair` makes it again


def project_status(workspace: Workspace, connection: Connection) -> list[ProjectStatus]:
    """Live progress of every queue this workspace pushed: done, skipped, remaining, mean time per task.

    A queue whose project is gone from the server is listed with ``missing`` set; the others go on.
    """
    found = []
    for queue in active_queues(workspace):
        if queue.kind == REVIEW:  # a reviewer's tasks are reviews, one per answer, not sources
            tasks = review_task_ids(workspace, queue.project_id)
        else:
            tasks = set(queue_tasks(workspace, queue.project_id))
        service = connection.queue(queue.annotator)
        if not project_exists(service, queue.project_id):
            found.append(
                ProjectStatus(queue.project_id, queue.kind, queue.annotator, len(tasks), 0, 0, 0, None, True)
            )
            continue
        raws = [raw for raw in fetch_project(service, queue.project_id) if raw.task_id in tasks]
        done = {raw.task_id for raw in raws if not raw.cancelled}
        skipped = {raw.task_id for raw in raws if raw.cancelled} - done
        times = [raw.lead_time for raw in raws if not raw.cancelled and raw.lead_time is not None]
        found.append(
            ProjectStatus(
                queue.project_id,
                queue.kind,
                queue.annotator,
                len(tasks),
                len(done),
                len(skipped),
                len(tasks - done - skipped),
                sum(times) / len(times) if times else None,
            )
        )
    return found
