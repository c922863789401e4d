"""`annotate repair`: make again, from the catalog, every queue whose Label Studio project is gone.

A project can disappear behind medgen's back: an admin deletes it, or the server's database is
restored from a backup older than the queue. The catalog still knows the queue: who it belongs to,
which sources it holds (gold ones included), their pre-fills, and every answer already pulled from
it. Repair makes the person's login and organization again where the server lacks them (keeping
their password), retires the lost project's row (its annotations keep it), creates a new project, and
imports the same tasks with the same pre-fills, each carrying the person's latest valid answer already
pulled, so nobody is asked again what they answered. Nothing is deleted from the catalog.

Resumable: each step is recorded as it completes, so a rerun after a crash finishes the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from annotation.accounts import refresh_accounts
from annotation.agreement import describe_votes
from annotation.client import Connection, api_error, project_exists
from annotation.push import (
    ANNOTATOR,
    ensure_project,
    import_batches,
    pending,
    recover_tasks,
    restored_annotation,
)
from annotation.tables import (
    REVIEW,
    every_queue,
    forget_tasks,
    latest_answers,
    lost_answers,
    mark_restored,
    queue_of,
    queue_sources,
    queue_tasks,
    retire_queue,
    retired_sources,
)
from medgen.errors import MedgenError
from medgen.workspace import Workspace


@dataclass
class RepairedQueue:
    annotator: str
    kind: str
    lost_project: int | None  # the project that was gone (None: a crash left no active one)
    project: int  # the project made in its place
    tasks: int  # tasks imported into it now
    answers: int  # of which with an answer already pulled from the person


@dataclass
class RepairReport:
    logins: list[str] = field(default_factory=list)  # people whose login or organization was made again
    repaired: list[RepairedQueue] = field(default_factory=list)
    intact: list[str] = field(default_factory=list)  # queues whose project the server still has


def repair(
    workspace: Workspace, connection: Connection, on_queue: Callable[[str], None] | None = None
) -> RepairReport:
    """Make again every queue whose project is gone from ``connection``'s server; see the module docstring."""
    report = RepairReport()
    if connection.own_server:
        report.logins = refresh_accounts(workspace)
        from annotation.server import load_credentials

        creds = load_credentials(workspace)
        connection.accounts.update(creds.accounts if creds else {})
    for kind, annotator in every_queue(workspace):
        if kind == REVIEW:  # `annotate review` makes a lost review queue again with its undecided reviews
            continue
        if on_queue is not None:
            on_queue(annotator)
        project_id = queue_of(workspace, kind, annotator)
        if project_id is not None and project_exists(connection.queue(annotator), project_id):
            refilled = _refill(workspace, connection, kind, annotator, project_id)
            if refilled is None:
                report.intact.append(annotator)
            else:
                report.repaired.append(refilled)
            continue
        if project_id is not None:
            retire_queue(workspace, project_id)
        report.repaired.append(_remake(workspace, connection, kind, annotator, project_id))
    return report


def _refill(
    workspace: Workspace, connection: Connection, kind: str, annotator: str, project_id: int
) -> RepairedQueue | None:
    """A surviving project that lost tasks or answers (an older database restored): import them again.

    None when it lacks nothing.
    """
    service = connection.queue(annotator)
    try:
        on_server = {
            int(task.id)
            for task in service.client.tasks.list(project=project_id, fields="task_only", page_size=1000)
        }
    except Exception as error:
        raise api_error(f"listing {annotator}'s tasks", error) from None
    recorded = queue_tasks(workspace, project_id)
    gone = [task_id for task_id in recorded if task_id not in on_server]
    lost = [answer for answer in lost_answers(workspace, project_id) if answer["task"] in on_server]
    if not gone and not lost:
        return None
    forget_tasks(workspace, gone)
    if kind == ANNOTATOR:
        sources, gold = pending(workspace, annotator, project_id)
        extra = None
    else:
        sources = sorted({recorded[task_id] for task_id in gone})
        gold, extra = set(), {s: {"votes": describe_votes(workspace, s)} for s in sources}
    restored = _reimport(workspace, connection, project_id, annotator, sources, gold, extra)
    account = connection.accounts.get(annotator)
    for answer in lost:  # answers lost on tasks that survived: made again, credited to their author
        try:
            service.post_json(
                f"/api/tasks/{answer['task']}/annotations/",
                restored_annotation(answer, account.user_id if account else None),
            )
        except MedgenError as error:
            raise MedgenError(f"restoring {annotator}'s answer to task {answer['task']}: {error}") from None
        mark_restored(workspace, [int(answer["id"])])  # type: ignore[arg-type]
    return RepairedQueue(annotator, kind, None, project_id, len(sources), restored + len(lost))


def _reimport(
    workspace: Workspace,
    connection: Connection,
    project_id: int,
    annotator: str,
    sources: list[str],
    gold: set[str],
    extra: dict[str, dict[str, object]] | None,
) -> int:
    """Import ``sources`` with their pre-fills and the person's answers already pulled; returns the answers."""
    answers = latest_answers(workspace, annotator, sources)
    import_batches(
        connection, workspace, project_id, annotator, sources, gold, prefilled=True, extra=extra, restore=True
    )
    mark_restored(workspace, [int(a["id"]) for a in answers.values()])  # type: ignore[call-overload]
    return len(answers)


def _remake(
    workspace: Workspace, connection: Connection, kind: str, annotator: str, lost: int | None
) -> RepairedQueue:
    """A new project for the queue, holding its sources with their pre-fills and the answers already pulled."""
    project_id, _ = ensure_project(connection, workspace, kind, annotator)
    recover_tasks(connection, workspace, project_id, annotator, set())  # a repair that crashed mid-import
    if kind == ANNOTATOR:
        sources, gold = pending(workspace, annotator, project_id)
        extra = None
    else:  # the adjudicator's queue: what the lost one held, with the annotators' answers shown again
        held = queue_sources(workspace, project_id)
        sources = [s for s in retired_sources(workspace, kind, annotator) if s not in held]
        gold, extra = set(), {s: {"votes": describe_votes(workspace, s)} for s in sources}
    answers = _reimport(workspace, connection, project_id, annotator, sources, gold, extra)
    return RepairedQueue(annotator, kind, lost, project_id, len(sources), answers)
