"""The generation stage's catalog tables, and all of its SQL: runs, failures, and what is left to make.

``generation_runs``: one row per run (backend, resolved config, status); ``generation_failures``: a
source that failed in a run, with the error. Candidates themselves are the catalog's own table
(``Catalog.add_candidates``), read by every later stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from medgen.workspace import Workspace
from medgen.workspace.catalog import now


def start_run(workspace: Workspace, run_id: str, backend: str, config: str) -> None:
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO generation_runs (id, backend, config, started_at) VALUES (?, ?, ?, ?)",
            (run_id, backend, config, now()),
        )


def end_run(workspace: Workspace, run_id: str, status: str, only_if_running: bool = False) -> None:
    """Record how a run ended (``only_if_running``: unless a row says it ended already)."""
    still = " AND status = 'running'" if only_if_running else ""
    with workspace.catalog.transaction() as conn:
        conn.execute(
            f"UPDATE generation_runs SET status = ?, finished_at = ? WHERE id = ?{still}",
            (status, now(), run_id),
        )


def record_failures(workspace: Workspace, run_id: str, failures: list[dict[str, str]]) -> None:
    """A run's failed sources (``source_id``, ``error``, ``at``), each once however often merged."""
    with workspace.catalog.transaction() as conn:
        for failure in failures:
            conn.execute(
                "INSERT INTO generation_failures SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM generation_failures"
                " WHERE run_id = ? AND source_id = ? AND at = ?)",
                (
                    run_id,
                    failure["source_id"],
                    failure["error"],
                    failure["at"],
                    run_id,
                    failure["source_id"],
                    failure["at"],
                ),
            )


def missing_slots(workspace: Workspace, candidates: int) -> tuple[int, int, Iterator[tuple[str, int]]]:
    """(sources, longest id, (source id, bit mask of its slots filled) of each source lacking some of its first
    ``candidates`` slots, in id order, from a cursor)."""
    capacity, width = workspace.catalog.conn.execute(
        "SELECT COUNT(*), MAX(LENGTH(id)) FROM sources"
    ).fetchone()
    rows: Any = (
        workspace.catalog.conn.execute(  # (source, slot) is unique: the sum of 1 << slot is a bit mask
            "SELECT s.id, COALESCE(SUM(1 << c.slot), 0) FROM sources s "
            "LEFT JOIN candidates c ON c.source_id = s.id AND c.slot < ? "
            "GROUP BY s.id HAVING COUNT(c.slot) < ? ORDER BY s.id",
            (candidates, candidates),
        )
    )
    return int(capacity), int(width or 1), rows
