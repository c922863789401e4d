"""The annotation stage's catalog tables, and all of its SQL: queues, the plan, tasks, annotations.

- ``ls_projects``: which Label Studio project holds whose queue. A queue is one person's project (kind
  ``annotator``) or the adjudicator's (``adjudication``). When its project is gone from the server,
  ``annotate repair`` retires the row (kept: its annotations still name their queue).
- ``task_plan``: which annotator gets which source, decided before any import.
- ``tasks``: the Label Studio task of each (queue, source).
- ``annotations`` and ``annotation_history``: every answer pulled, and every version a later pull replaced.
- ``ls_accounts`` (non-secret ids of the team's logins), ``ls_uploads`` (images uploaded to servers that do
  not read this disk), ``prefills`` (a screener's answer per source), ``ls_restores`` (older Label Studio
  databases found, with the ids they lacked).

Other modules call these typed functions; none writes SQL of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from medgen.workspace import Workspace
from medgen.workspace.catalog import IN_CHUNK, now

"""``ls_projects.kind`` of an annotator's queue."""
ADJUDICATION = "adjudication"
"""``ls_projects.kind`` of the adjudication project; its answers win over the vote."""
REVIEW = "review"
"""``ls_projects.kind`` of a reviewer's queue: decisions on others' answers, not answers (`annotate review`)."""
HISTORY_COLUMNS = (
    "ls_annotation_id, ls_task_id, ls_project_id, annotator, source_id, status, reasons, labels, lead_time_s, "
    "created_at, updated_at, pulled_at, completed_by"
)
"""Columns of ``annotations`` that ``annotation_history`` keeps of each version a pull replaced."""


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


def add_queue(
    workspace: Workspace, project_id: int, kind: str, annotator: str, title: str, regions: int = 0
) -> None:
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at, regions) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (project_id, kind, annotator, title, now(), regions),
        )


NO_REGIONS, OPTIONAL_REGIONS, REQUIRED_REGIONS = 0, 1, 2
"""``ls_projects.regions``: whether a queue's page marks where defects are (`push --regions`), and whether each
tag that can be marked needs its region (`--require-regions`)."""


def queue_regions(workspace: Workspace, kind: str, annotator: str) -> int:
    """How ``annotator``'s queue of ``kind`` marks regions: the latest one's setting, retired or not (a repaired
    queue keeps what the lost one had)."""
    rows = workspace.catalog.query(
        "SELECT regions FROM ls_projects WHERE kind = ? AND annotator = ? ORDER BY ls_project_id DESC LIMIT 1",
        (kind, annotator),
    )
    return int(rows[0]["regions"]) if rows else NO_REGIONS


def team_regions(workspace: Workspace) -> int:
    """The most any active annotator queue asks of regions (the adjudicator's page follows the team's)."""
    rows = workspace.catalog.query(
        "SELECT MAX(regions) FROM ls_projects WHERE kind NOT IN (?, ?) AND retired_at IS NULL",
        (ADJUDICATION, REVIEW),
    )
    return int(rows[0][0] or NO_REGIONS)


def set_queue_regions(workspace: Workspace, project_id: int, regions: int) -> None:
    with workspace.catalog.transaction() as conn:
        conn.execute("UPDATE ls_projects SET regions = ? WHERE ls_project_id = ?", (regions, project_id))


def answers_in(workspace: Workspace, project_id: int) -> int:
    """Answers pulled from a queue's project, whatever their status."""
    return workspace.catalog.count("annotations", "ls_project_id = ?", (project_id,))


def regions_by_project(workspace: Workspace) -> dict[int, int]:
    """Every queue's region setting, by project id (pull validates each answer against its queue's)."""
    rows = workspace.catalog.query("SELECT ls_project_id, regions FROM ls_projects")
    return {int(r["ls_project_id"]): int(r["regions"]) for r in rows}


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
            conn.execute("UPDATE reviews SET ls_task_id = ? WHERE ls_task_id = ?", (moved, task_id))
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
    for table in ("annotations", "annotation_history", "reviews"):
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


def has_queues(workspace: Workspace) -> bool:
    return workspace.catalog.count("ls_projects") > 0


# ---- accounts and uploads ---------------------------------------------------------------------------


def record_accounts(workspace: Workspace, rows: list[tuple[str, str, str, int, int]]) -> None:
    """(name, kind, e-mail, Label Studio user id, organization id) of logins made or made again."""
    with workspace.catalog.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO ls_accounts VALUES (?, ?, ?, ?, ?, ?)", [(*row, now()) for row in rows]
        )


def account_ids(workspace: Workspace) -> list[tuple[str, str, int]]:
    """(name, e-mail, Label Studio user id) of every login the workspace made."""
    rows = workspace.catalog.query("SELECT name, email, ls_user_id FROM ls_accounts")
    return [(r["name"], r["email"], int(r["ls_user_id"])) for r in rows]


def uploaded(workspace: Workspace, server: str, keys: Sequence[str]) -> dict[str, str]:
    """Store key -> URL of the images already uploaded to ``server``, among ``keys``."""
    rows = workspace.catalog.rows_in("SELECT server, image_key, url FROM ls_uploads WHERE image_key", keys)
    return {r["image_key"]: r["url"] for r in rows if r["server"] == server}


def record_uploads(workspace: Workspace, server: str, urls: dict[str, str]) -> None:
    with workspace.catalog.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO ls_uploads VALUES (?, ?, ?)",
            [(server, key, url) for key, url in urls.items()],
        )


# ---- the plan and the tasks -------------------------------------------------------------------------


def planned_sources(workspace: Workspace) -> set[str]:
    return {r["source_id"] for r in workspace.catalog.query("SELECT DISTINCT source_id FROM task_plan")}


def gold_sources(workspace: Workspace) -> set[str]:
    return {
        r["source_id"] for r in workspace.catalog.query("SELECT source_id FROM task_plan WHERE is_gold = 1")
    }


def plan_load(workspace: Workspace) -> dict[str, int]:
    """Planned non-gold sources per annotator."""
    rows = workspace.catalog.query(
        "SELECT annotator, COUNT(*) AS n FROM task_plan WHERE is_gold = 0 GROUP BY annotator"
    )
    return {r["annotator"]: int(r["n"]) for r in rows}


def add_plan(workspace: Workspace, rows: list[tuple[str, str, int, str]]) -> None:
    """(source, annotator, is_gold, rank) rows of the plan, in one transaction."""
    with workspace.catalog.transaction() as conn:
        conn.executemany("INSERT INTO task_plan VALUES (?, ?, ?, ?, ?)", [(*row, now()) for row in rows])


def plan_sizes(workspace: Workspace) -> list[tuple[str, bool, int]]:
    """(source, gold, annotators planned) per planned source."""
    rows = workspace.catalog.query(
        "SELECT source_id, MAX(is_gold) AS gold, COUNT(*) AS n FROM task_plan GROUP BY source_id"
    )
    return [(r["source_id"], bool(r["gold"]), int(r["n"])) for r in rows]


def not_imported(workspace: Workspace, annotator: str, project_id: int) -> list[tuple[str, bool]]:
    """(source, is_gold) planned for ``annotator`` and not yet a task of ``project_id``, in queue order."""
    rows = workspace.catalog.query(
        "SELECT source_id, is_gold FROM task_plan WHERE annotator = ? AND source_id NOT IN "
        "(SELECT source_id FROM tasks WHERE ls_project_id = ?) ORDER BY rank",
        (annotator, project_id),
    )
    return [(r["source_id"], bool(r["is_gold"])) for r in rows]


def record_tasks(
    workspace: Workspace, rows: list[tuple[int, int, str, str, int]], recovered: bool = False
) -> int:
    """(task id, project, source, annotator, is_gold) of imported tasks; ``recovered``: tasks found on the
    server after a crash, kept where the catalog has one already. Returns the rows added."""
    verb = "INSERT OR IGNORE" if recovered else "INSERT"
    with workspace.catalog.transaction() as conn:
        added = 0
        for row in rows:
            cursor = conn.execute(
                f"{verb} INTO tasks (ls_task_id, ls_project_id, source_id, annotator, is_gold, pushed_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*row, now()),
            )
            added += cursor.rowcount
    return added


def tasks_by_id(workspace: Workspace, task_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Task id -> its queue's project, source and annotator, for the tasks the catalog knows among ``task_ids``."""
    rows = workspace.catalog.rows_in(
        "SELECT t.ls_task_id, t.ls_project_id, t.source_id, p.annotator FROM tasks t "
        "JOIN ls_projects p ON p.ls_project_id = t.ls_project_id WHERE t.ls_task_id",
        task_ids,
    )
    return {int(r["ls_task_id"]): dict(r) for r in rows}


def queue_task_sources(workspace: Workspace, project_id: int) -> Iterator[tuple[int, str]]:
    """(task id, source) of one queue's tasks in id order, from a cursor."""
    cursor = workspace.catalog.conn.execute(
        "SELECT ls_task_id, source_id FROM tasks WHERE ls_project_id = ? ORDER BY ls_task_id", (project_id,)
    )
    yield from ((int(r["ls_task_id"]), r["source_id"]) for r in cursor)


# ---- annotations --------------------------------------------------------------------------------------


def begin_pull(workspace: Workspace) -> None:
    """A fresh record of the annotation ids this pull sees (a temporary table of this connection)."""
    conn = workspace.catalog.conn
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS pulled_now (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM pulled_now")


def stored_annotations(workspace: Workspace, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Annotation id -> (task, created, updated, status) of the stored ones among ``ids``."""
    rows = workspace.catalog.rows_in(
        "SELECT ls_annotation_id, ls_task_id, created_at, updated_at, status FROM annotations WHERE ls_annotation_id",
        ids,
    )
    return {int(r["ls_annotation_id"]): dict(r) for r in rows}


def save_annotations(
    workspace: Workspace, rows: list[tuple[Any, ...]], replaced: list[int], reused: list[int], seen: list[int]
) -> None:
    """Upsert pulled annotations (``rows`` in ``HISTORY_COLUMNS`` order) in one transaction.

    ``replaced``: stored ids whose version before goes to the history first; ``reused``: stored ids
    Label Studio gave to another annotation, moved aside first; ``seen``: every id this pull saw.
    """
    with workspace.catalog.transaction() as conn:
        for annotation_id in reused:
            make_room_for_annotation(conn, annotation_id)
        conn.executemany(
            f"INSERT INTO annotation_history ({HISTORY_COLUMNS}, replaced_at) "
            f"SELECT {HISTORY_COLUMNS}, ? FROM annotations WHERE ls_annotation_id = ?",
            [(now(), annotation_id) for annotation_id in replaced],
        )
        marks = ", ".join("?" * len(HISTORY_COLUMNS.split(",")))
        conn.executemany(f"INSERT OR REPLACE INTO annotations ({HISTORY_COLUMNS}) VALUES ({marks})", rows)
        conn.executemany("INSERT OR IGNORE INTO pulled_now VALUES (?)", [(i,) for i in seen])


def mark_unseen(
    workspace: Workspace,
    project_id: int,
    valid: str,
    marks: list[tuple[str, str, list[tuple[int, int]] | None]],
) -> list[int]:
    """Counted (``valid``) annotations of a project this pull did not see: their version goes to the history,
    then each ``(status, reason, id ranges or None for all)`` of ``marks`` relabels those left, in order.
    Returns how many each relabelled."""
    gone = "ls_project_id = ? AND status = ? AND ls_annotation_id NOT IN (SELECT id FROM pulled_now)"
    counts = []
    with workspace.catalog.transaction() as conn:
        conn.execute(
            f"INSERT INTO annotation_history ({HISTORY_COLUMNS}, replaced_at) "
            f"SELECT {HISTORY_COLUMNS}, ? FROM annotations WHERE {gone}",
            (now(), project_id, valid),
        )
        for status, reason, ranges in marks:
            within = (
                " OR ".join("(ls_annotation_id > ? AND ls_annotation_id <= ?)" for _ in ranges) or "0"
                if ranges is not None
                else "1"
            )
            bounds = tuple(bound for pair in ranges or [] for bound in pair)
            cursor = conn.execute(
                f"UPDATE annotations SET status = ?, reasons = ?, pulled_at = ? WHERE {gone} AND ({within})",
                (status, json.dumps([reason]), now(), project_id, valid, *bounds),
            )
            counts.append(cursor.rowcount)
    return counts


def annotations_not_used(workspace: Workspace, valid: str) -> list[dict[str, Any]]:
    """Every stored annotation whose status is not ``valid``, in id order."""
    rows = workspace.catalog.query(
        "SELECT * FROM annotations WHERE status != ? ORDER BY ls_annotation_id", (valid,)
    )
    return [dict(r) for r in rows]


def status_totals(workspace: Workspace) -> dict[str, int]:
    rows = workspace.catalog.query("SELECT status, COUNT(*) AS n FROM annotations GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


def valid_votes(workspace: Workspace, gold_only: bool = False) -> Iterator[Any]:
    """(source_id, annotator, labels) of valid annotators' (not adjudicators') answers, by source then id, from
    a cursor; ``gold_only``: gold sources only."""
    gold = "AND a.source_id IN (SELECT source_id FROM tasks WHERE is_gold = 1) " if gold_only else ""
    return workspace.catalog.conn.execute(
        "SELECT a.source_id, a.annotator, a.labels FROM annotations a "
        "JOIN ls_projects p ON p.ls_project_id = a.ls_project_id WHERE a.status = 'valid' AND p.kind != ? "
        f"{gold}ORDER BY a.source_id, a.ls_annotation_id",
        (ADJUDICATION,),
    )


CONSENSUS_ROWS = (
    "SELECT a.source_id, a.annotator, a.status, a.labels, a.ls_annotation_id, p.kind, r.decision AS review "
    "FROM annotations a LEFT JOIN ls_projects p ON p.ls_project_id = a.ls_project_id "
    "LEFT JOIN reviews r ON r.ls_annotation_id = a.ls_annotation_id "
)


def consensus_rows(workspace: Workspace, source_id: str | None = None) -> Any:
    """What consensus weighs: every annotation (status, labels, queue kind), one source's or all by source."""
    if source_id is not None:
        return workspace.catalog.query(
            CONSENSUS_ROWS + "WHERE a.source_id = ? ORDER BY a.ls_annotation_id", (source_id,)
        )
    return workspace.catalog.conn.execute(CONSENSUS_ROWS + "ORDER BY a.source_id, a.ls_annotation_id")


def annotated_sources(workspace: Workspace) -> list[str]:
    rows = workspace.catalog.query("SELECT DISTINCT source_id FROM annotations ORDER BY source_id")
    return [r["source_id"] for r in rows]


def count_annotated_sources(workspace: Workspace) -> int:
    return int(workspace.catalog.query("SELECT COUNT(DISTINCT source_id) AS n FROM annotations")[0]["n"])


def any_valid_label_with(workspace: Workspace, text: str) -> bool:
    """Whether some valid annotation's labels hold ``text`` (e.g. the simulated annotators' mark)."""
    rows = workspace.catalog.query(
        "SELECT 1 FROM annotations WHERE status = 'valid' AND instr(labels, ?) > 0 LIMIT 1", (text,)
    )
    return bool(rows)


def unusable_without_valid(workspace: Workspace, project_id: int, statuses: Sequence[str]) -> list[int]:
    """Annotations of a project with one of ``statuses`` on tasks that hold no valid annotation."""
    marks = ", ".join("?" * len(statuses))
    rows = workspace.catalog.query(
        f"SELECT a.ls_annotation_id FROM annotations a WHERE a.ls_project_id = ? AND a.status IN ({marks}) "
        "AND NOT EXISTS (SELECT 1 FROM annotations b WHERE b.ls_task_id = a.ls_task_id AND b.status = 'valid')",
        (project_id, *statuses),
    )
    return [int(r["ls_annotation_id"]) for r in rows]


# ---- pre-fills ------------------------------------------------------------------------------------------


def save_prefills(workspace: Workspace, rows: list[tuple[str, str, float | None, str]]) -> None:
    """(source, model version, score, labels JSON) per source, replacing an earlier pre-fill."""
    with workspace.catalog.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO prefills VALUES (?, ?, ?, ?, ?)", [(*row, now()) for row in rows]
        )


def prefill_rows(workspace: Workspace, source_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Stored pre-fills (source, model version, score, labels JSON): all, or those of ``source_ids``."""
    select = "SELECT source_id, model_version, score, labels FROM prefills"
    rows = (
        workspace.catalog.query(select)
        if source_ids is None
        else workspace.catalog.rows_in(f"{select} WHERE source_id", source_ids)  # a batch, not the table
    )
    return [dict(r) for r in rows]


def count_prefills(workspace: Workspace) -> int:
    return workspace.catalog.count("prefills")


# ---- older Label Studio databases ------------------------------------------------------------------------

CATALOG_MAXIMA = {
    "project": "SELECT MAX(ls_project_id) FROM ls_projects",
    "task": "SELECT MAX(ls_task_id) FROM tasks",
    "task_completion": "SELECT MAX(id) FROM (SELECT MAX(ls_annotation_id) AS id FROM annotations "
    "UNION ALL SELECT MAX(ls_annotation_id) FROM annotation_history)",
    "htx_user": "SELECT MAX(ls_user_id) FROM ls_accounts",
    "organization": "SELECT MAX(ls_org_id) FROM ls_accounts",
}
"""Label Studio table -> the highest of its ids the catalog holds."""


def catalog_maxima(workspace: Workspace) -> dict[str, int]:
    found = {
        table: workspace.catalog.conn.execute(sql).fetchone()[0] for table, sql in CATALOG_MAXIMA.items()
    }
    return {table: int(value) for table, value in found.items() if value is not None}


def record_restore(workspace: Workspace, moved: dict[str, tuple[int, int]]) -> None:
    """Remember which ids an older database lost: (its counter, the catalog's highest) per table."""
    with workspace.catalog.transaction() as conn:
        conn.execute("INSERT INTO ls_restores VALUES (?, ?)", (now(), json.dumps(moved)))


def lost_ranges(workspace: Workspace, table: str) -> list[tuple[int, int]]:
    """Id ranges (exclusive, inclusive] of ``table`` that restored databases did not hold."""
    ranges = []
    for (counters,) in workspace.catalog.conn.execute("SELECT counters FROM ls_restores"):
        if table in (found := json.loads(counters)):
            ranges.append((int(found[table][0]), int(found[table][1])))
    return ranges


# ---- reviews ------------------------------------------------------------------------------------------

REVIEW_COLUMNS = (
    "ls_annotation_id, source_id, annotator, ls_task_id, reason, reviewer, decision, comment, expected, "
    "decided_at, queued_at"
)
"""Columns ``add_reviews`` takes, in order."""


def review_pool(workspace: Workspace, kind: str) -> list[dict[str, Any]]:
    """Counted answers in queues of ``kind`` that no review has seen, oldest first, each with its rank among
    its author's answers (1 = their first; rejected ones count) and whether its task is gold."""
    rows = workspace.catalog.query(
        "SELECT * FROM (SELECT a.ls_annotation_id, a.ls_task_id, a.ls_project_id, a.annotator, a.source_id, "
        "a.labels, a.status, COALESCE(t.is_gold, 0) AS is_gold, "
        "ROW_NUMBER() OVER (PARTITION BY a.annotator ORDER BY a.ls_annotation_id) AS rank "
        "FROM annotations a JOIN ls_projects p ON p.ls_project_id = a.ls_project_id "
        "LEFT JOIN tasks t ON t.ls_task_id = a.ls_task_id WHERE p.kind = ? AND a.status IN ('valid', 'rejected')) "
        "WHERE status = 'valid' AND ls_annotation_id NOT IN (SELECT ls_annotation_id FROM reviews) "
        "ORDER BY ls_annotation_id",
        (kind,),
    )
    return [dict(r) for r in rows]


def returned_tasks(workspace: Workspace) -> dict[int, set[str]]:
    """Task id -> the reasons (``gold_miss``, a reviewer's) its earlier answers were rejected for."""
    found: dict[int, set[str]] = {}
    for r in workspace.catalog.query("SELECT ls_task_id, reason FROM reviews WHERE decision = 'rejected'"):
        found.setdefault(int(r["ls_task_id"]), set()).add(r["reason"])
    return found


def add_reviews(
    workspace: Workspace, rows: list[tuple[Any, ...]], decisions: Sequence[tuple[int, str, str, str]] = ()
) -> None:
    """New review rows (``REVIEW_COLUMNS`` order; an answer is reviewed once) and the decisions already made on
    some of them (``decide_reviews``), in one transaction."""
    marks = ", ".join("?" * len(REVIEW_COLUMNS.split(",")))
    with workspace.catalog.transaction() as conn:
        conn.executemany(f"INSERT OR IGNORE INTO reviews ({REVIEW_COLUMNS}) VALUES ({marks})", rows)
        _decide(conn, decisions)


def unpushed_reviews(workspace: Workspace, reviewer: str) -> list[dict[str, Any]]:
    """``reviewer``'s queued reviews without a task on the server yet, oldest answer first."""
    rows = workspace.catalog.query(
        "SELECT r.*, a.labels FROM reviews r JOIN annotations a ON a.ls_annotation_id = r.ls_annotation_id "
        "WHERE r.reviewer = ? AND r.review_task_id IS NULL AND r.decision IS NULL ORDER BY r.ls_annotation_id",
        (reviewer,),
    )
    return [dict(r) for r in rows]


def record_review_tasks(workspace: Workspace, project_id: int, pairs: list[tuple[int, int]]) -> None:
    """(annotation id, the reviewer's task id) of review tasks imported now into ``project_id``."""
    with workspace.catalog.transaction() as conn:
        conn.executemany(
            "UPDATE reviews SET review_task_id = ?, review_project_id = ? WHERE ls_annotation_id = ?",
            [(task, project_id, annotation) for annotation, task in pairs],
        )


def review_task_ids(workspace: Workspace, project_id: int) -> set[int]:
    """The review tasks the catalog recorded in a reviewer's project."""
    rows = workspace.catalog.query(
        "SELECT review_task_id FROM reviews WHERE review_project_id = ?", (project_id,)
    )
    return {int(r[0]) for r in rows}


def count_review_tasks(workspace: Workspace, project_id: int) -> int:
    return workspace.catalog.count("reviews", "review_project_id = ?", (project_id,))


def requeue_undecided(workspace: Workspace, project_id: int) -> None:
    """Undecided reviews of a review project gone from the server: queued again for the next one."""
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "UPDATE reviews SET review_task_id = NULL, review_project_id = NULL "
            "WHERE review_project_id = ? AND decision IS NULL",
            (project_id,),
        )


def reviews_by_review_task(workspace: Workspace, task_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Review task id -> its review row, among ``task_ids``."""
    rows = workspace.catalog.rows_in("SELECT * FROM reviews WHERE review_task_id", task_ids)
    return {int(r["review_task_id"]): dict(r) for r in rows}


def decide_reviews(workspace: Workspace, decisions: list[tuple[int, str, str, str]]) -> None:
    """(annotation id, decision, comment, reviewer) in one transaction. A rejected answer stops counting: its
    version goes to the history and it is marked ``rejected`` with the comment; an accepted one counts again
    if a decision before (not yet returned to its author) had rejected it."""
    with workspace.catalog.transaction() as conn:
        _decide(conn, decisions)


def _decide(conn: Any, decisions: Sequence[tuple[int, str, str, str]]) -> None:
    for annotation_id, decision, comment, reviewer in decisions:
        conn.execute(
            "UPDATE reviews SET decision = ?, comment = ?, reviewer = ?, decided_at = ? "
            "WHERE ls_annotation_id = ? AND returned_at IS NULL",
            (decision, comment, reviewer, now(), annotation_id),
        )
        if decision == "rejected":
            conn.execute(
                f"INSERT INTO annotation_history ({HISTORY_COLUMNS}, replaced_at) "
                f"SELECT {HISTORY_COLUMNS}, ? FROM annotations WHERE ls_annotation_id = ? AND status = 'valid'",
                (now(), annotation_id),
            )
            conn.execute(
                "UPDATE annotations SET status = 'rejected', reasons = ? WHERE ls_annotation_id = ? AND status = 'valid'",
                (json.dumps([f"rejected by {reviewer}: {comment}"]), annotation_id),
            )
        else:
            conn.execute(
                "UPDATE annotations SET status = 'valid', reasons = '[]' WHERE ls_annotation_id = ? AND status = 'rejected'",
                (annotation_id,),
            )


def rejected_among(workspace: Workspace, annotation_ids: Sequence[int]) -> set[int]:
    """The answers among ``annotation_ids`` a review rejected (a pull keeps them out of the count)."""
    rows = workspace.catalog.rows_in(
        "SELECT ls_annotation_id FROM reviews WHERE decision = 'rejected' AND ls_annotation_id",
        annotation_ids,
    )
    return {int(r["ls_annotation_id"]) for r in rows}


def reviews_to_return(workspace: Workspace) -> list[dict[str, Any]]:
    """Rejected answers not yet sent back to their authors, with their labels, queue and task (``old_task``:
    the task the answer was made on; ``returned_task_id``: its replacement, once imported)."""
    rows = workspace.catalog.query(
        "SELECT r.*, a.labels, a.ls_project_id, a.ls_task_id AS old_task, t.is_gold FROM reviews r "
        "JOIN annotations a ON a.ls_annotation_id = r.ls_annotation_id "
        "LEFT JOIN tasks t ON t.ls_task_id = a.ls_task_id "
        "WHERE r.decision = 'rejected' AND r.returned_at IS NULL ORDER BY r.ls_annotation_id"
    )
    return [dict(r) for r in rows]


def move_returned_tasks(workspace: Workspace, moves: list[tuple[int, int, int]]) -> None:
    """(annotation id, old task, new task) of rejected answers whose task was imported again: the queue's task
    row, and every review of an answer on the old task, follow the new one (the answers keep the old id)."""
    with workspace.catalog.transaction() as conn:
        for annotation_id, old, new in moves:
            conn.execute(
                "UPDATE reviews SET returned_task_id = ? WHERE ls_annotation_id = ?", (new, annotation_id)
            )
            conn.execute("UPDATE tasks SET ls_task_id = ? WHERE ls_task_id = ?", (new, old))
            conn.execute("UPDATE reviews SET ls_task_id = ? WHERE ls_task_id = ?", (new, old))


def mark_returned(workspace: Workspace, annotation_ids: list[int]) -> None:
    with workspace.catalog.transaction() as conn:
        conn.executemany(
            "UPDATE reviews SET returned_at = ? WHERE ls_annotation_id = ?",
            [(now(), i) for i in annotation_ids],
        )


def count_queue_tasks(workspace: Workspace, project_id: int) -> int:
    return workspace.catalog.count("tasks", "ls_project_id = ?", (project_id,))


def review_rows(workspace: Workspace) -> Iterator[Any]:
    """Every review row (annotator, reason, reviewer, decision, times), from a cursor."""
    return workspace.catalog.conn.execute(
        "SELECT ls_annotation_id, annotator, source_id, reason, reviewer, decision, queued_at, decided_at, "
        "returned_at FROM reviews ORDER BY ls_annotation_id"
    )


def report_rows(workspace: Workspace) -> Iterator[Any]:
    """Every pulled answer with what the quality report weighs (queue kind, gold, the source's pre-fill), by
    source then id, from a cursor."""
    return workspace.catalog.conn.execute(
        "SELECT a.source_id, a.annotator, a.status, a.labels, a.lead_time_s, a.created_at, p.kind, "
        "COALESCE(t.is_gold, 0) AS is_gold, f.labels AS prefill FROM annotations a "
        "LEFT JOIN ls_projects p ON p.ls_project_id = a.ls_project_id "
        "LEFT JOIN tasks t ON t.ls_task_id = a.ls_task_id LEFT JOIN prefills f ON f.source_id = a.source_id "
        "ORDER BY a.source_id, a.ls_annotation_id"
    )
