"""The catalog's record of queues: which Label Studio project holds whose queue (``ls_projects``).

A queue is one person's project (``kind`` annotator), or the adjudicator's. When its project is
gone from the server, ``annotate repair`` retires the row (kept: its annotations still name their
queue) and records the project it makes in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medgen.workspace import Workspace
from medgen.workspace.catalog import IN_CHUNK, now


@dataclass(frozen=True)
class Queue:
    project_id: int
    kind: str
    annotator: str
    title: str


def active_queues(workspace: Workspace, kind: str | None = None) -> list[Queue]:
    """Every queue not retired (of ``kind`` when given), in project order."""
    where = "retired_at IS NULL" + (" AND kind = ?" if kind else "")
    rows = workspace.catalog.query(
        f"SELECT ls_project_id, kind, annotator, title FROM ls_projects WHERE {where} ORDER BY ls_project_id",
        (kind,) if kind else (),
    )
    return [Queue(int(r["ls_project_id"]), r["kind"], r["annotator"], r["title"]) for r in rows]


def queue_names(workspace: Workspace, kind: str) -> set[str]:
    """Everyone who has (or had, before a repair) a queue of ``kind``."""
    rows = workspace.catalog.query("SELECT DISTINCT annotator FROM ls_projects WHERE kind = ?", (kind,))
    return {r["annotator"] for r in rows}


def every_queue(workspace: Workspace) -> list[tuple[str, str]]:
    """(kind, annotator) of every queue the workspace has had, retired or not."""
    rows = workspace.catalog.query(
        "SELECT DISTINCT kind, annotator FROM ls_projects ORDER BY kind, annotator"
    )
    return [(r["kind"], r["annotator"]) for r in rows]


def queue_of(workspace: Workspace, kind: str, annotator: str) -> int | None:
    """The project id of ``annotator``'s active queue of ``kind``, or None."""
    rows = workspace.catalog.query(
        "SELECT ls_project_id FROM ls_projects WHERE kind = ? AND annotator = ? AND retired_at IS NULL",
        (kind, annotator),
    )
    return int(rows[0]["ls_project_id"]) if rows else None


def add_queue(workspace: Workspace, project_id: int, kind: str, annotator: str, title: str) -> None:
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at) VALUES (?, ?, ?, ?, ?)",
            (project_id, kind, annotator, title, now()),
        )


def retire_queue(workspace: Workspace, project_id: int) -> None:
    """Mark a queue's project as gone from the server; its tasks and annotations stay as they are."""
    with workspace.catalog.transaction() as conn:
        conn.execute("UPDATE ls_projects SET retired_at = ? WHERE ls_project_id = ?", (now(), project_id))


def queue_sources(workspace: Workspace, project_id: int) -> set[str]:
    """The sources a queue's project holds as tasks."""
    rows = workspace.catalog.query("SELECT source_id FROM tasks WHERE ls_project_id = ?", (project_id,))
    return {r["source_id"] for r in rows}


def retired_sources(workspace: Workspace, kind: str, annotator: str) -> list[str]:
    """Sources that retired queues of (kind, annotator) held, in the order they were pushed."""
    rows = workspace.catalog.query(
        "SELECT t.source_id FROM tasks t JOIN ls_projects p ON p.ls_project_id = t.ls_project_id "
        "WHERE p.kind = ? AND p.annotator = ? AND p.retired_at IS NOT NULL GROUP BY t.source_id "
        "ORDER BY MIN(t.ls_task_id)",
        (kind, annotator),
    )
    return [r["source_id"] for r in rows]


def latest_answers(workspace: Workspace, annotator: str, sources: list[str]) -> dict[str, dict[str, object]]:
    """``annotator``'s latest usable answer per source (labels JSON, lead time, annotation id), over all
    their queues: a valid one, or one lost with an older database (``lost``)."""
    found: dict[str, dict[str, object]] = {}
    for start in range(0, len(sources), IN_CHUNK):
        chunk = sources[start : start + IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        for r in workspace.catalog.query(
            "SELECT ls_annotation_id, source_id, labels, lead_time_s FROM annotations WHERE annotator = ? "
            f"AND status IN ('valid', 'lost') AND source_id IN ({marks}) ORDER BY ls_annotation_id",
            (annotator, *chunk),
        ):  # the latest wins
            found[r["source_id"]] = {
                "labels": r["labels"],
                "lead_time": r["lead_time_s"],
                "id": r["ls_annotation_id"],
            }
    return found


def queue_tasks(workspace: Workspace, project_id: int) -> dict[int, str]:
    """Task id -> source id of the tasks the catalog recorded in a project."""
    rows = workspace.catalog.query(
        "SELECT ls_task_id, source_id FROM tasks WHERE ls_project_id = ?", (project_id,)
    )
    return {int(r["ls_task_id"]): r["source_id"] for r in rows}


def make_room_for_tasks(workspace: Workspace, task_ids: list[int]) -> int:
    """Move aside the catalog's rows of tasks whose Label Studio ids are being given to new tasks.

    Label Studio on SQLite numbers imported tasks from its highest id, so the ids of deleted tasks (a
    deleted project, an older database restored) come back. The old row, and the annotations that
    name it, take a fresh negative id: kept, distinct, and older than any Label Studio id. Returns how
    many rows moved.
    """
    taken = [
        int(r["ls_task_id"])
        for r in workspace.catalog.rows_in("SELECT ls_task_id FROM tasks WHERE ls_task_id", task_ids)
    ]
    if not taken:
        return 0
    with workspace.catalog.transaction() as conn:
        floor = min(0, conn.execute("SELECT MIN(ls_task_id) FROM tasks").fetchone()[0] or 0)
        for offset, task_id in enumerate(taken, start=1):
            moved = floor - offset
            project = conn.execute(
                "SELECT ls_project_id FROM tasks WHERE ls_task_id = ?", (task_id,)
            ).fetchone()[0]
            conn.execute("UPDATE tasks SET ls_task_id = ? WHERE ls_task_id = ?", (moved, task_id))
            for table in ("annotations", "annotation_history"):
                conn.execute(
                    f"UPDATE {table} SET ls_task_id = ? WHERE ls_task_id = ? AND ls_project_id = ?",
                    (moved, task_id, project),
                )
    return len(taken)


def make_room_for_annotation(conn: Any, annotation_id: int) -> None:
    """Move aside the catalog's row of an annotation whose Label Studio id came back for another one
    (inside the caller's transaction): it takes a fresh negative id, with its history."""
    floor = min(0, conn.execute("SELECT MIN(ls_annotation_id) FROM annotations").fetchone()[0] or 0)
    for table in ("annotations", "annotation_history"):
        conn.execute(
            f"UPDATE {table} SET ls_annotation_id = ? WHERE ls_annotation_id = ?", (floor - 1, annotation_id)
        )


def forget_tasks(workspace: Workspace, task_ids: list[int]) -> None:
    """Drop the record of tasks gone from their (surviving) project, so they are imported again.

    Their annotations keep their own copy of queue, person and source: nothing pulled goes with them.
    """
    with workspace.catalog.transaction() as conn:
        conn.executemany("DELETE FROM tasks WHERE ls_task_id = ?", [(task_id,) for task_id in task_ids])


def lost_answers(workspace: Workspace, project_id: int) -> list[dict[str, object]]:
    """The latest ``lost`` answer per task of a project (gone with an older database), oldest task first."""
    rows = workspace.catalog.query(
        "SELECT ls_annotation_id, ls_task_id, labels, lead_time_s FROM annotations WHERE ls_project_id = ? "
        "AND status = 'lost' ORDER BY ls_task_id, ls_annotation_id",
        (project_id,),
    )
    latest = {int(r["ls_task_id"]): r for r in rows}
    return [
        {"task": task, "labels": r["labels"], "lead_time": r["lead_time_s"], "id": r["ls_annotation_id"]}
        for task, r in latest.items()
    ]


def mark_restored(workspace: Workspace, annotation_ids: list[int]) -> None:
    """Lost answers imported again by repair: their new copies count; the catalog keeps these rows."""
    with workspace.catalog.transaction() as conn:
        conn.executemany(
            "UPDATE annotations SET status = 'restored' WHERE ls_annotation_id = ? AND status = 'lost'",
            [(annotation_id,) for annotation_id in annotation_ids],
        )
