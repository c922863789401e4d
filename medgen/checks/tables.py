"""The checks' catalog tables and all of their SQL.

``candidate_checks``: one row per checked candidate (findings, every measured value, where the product was
found, the settings digest it was measured with). ``dropped_candidates``: candidates that
``generate --drop-failing`` moved out of ``candidates`` (so no task shows them), with the findings that
dropped them; their image files stay in the store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from medgen.workspace import Workspace
from medgen.workspace.catalog import IN_CHUNK, now


def stored(
    workspace: Workspace, candidate_ids: Sequence[str], settings: str | None = None
) -> dict[str, dict[str, Any]]:
    """Stored checks of ``candidate_ids`` (only those measured with ``settings`` when given), by candidate id;
    only checks of the image each candidate has now (a slot made again keeps its id, not its image)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(candidate_ids), IN_CHUNK):
        chunk = list(candidate_ids[start : start + IN_CHUNK])
        marks = ",".join("?" * len(chunk))
        for row in workspace.catalog.query(
            "SELECT k.* FROM candidate_checks k JOIN candidates c ON c.id = k.candidate_id AND c.image_key = "
            f"k.image_key WHERE k.candidate_id IN ({marks})",
            tuple(chunk),
        ):
            if settings is None or row["settings"] == settings:
                found[row["candidate_id"]] = {
                    "source": row["source_id"],
                    "candidate": row["candidate_id"],
                    "findings": json.loads(row["findings"]),
                    "measured": json.loads(row["measured"]),
                    **json.loads(row["details"]),
                }
    return found


def save(workspace: Workspace, settings: str, records: Sequence[dict[str, Any]]) -> None:
    """Store checks of workspace candidates (replacing older ones of the same candidates), in one transaction."""
    with workspace.catalog.transaction() as conn:
        for record in records:
            details = {
                k: v for k, v in record.items() if k not in ("source", "candidate", "findings", "measured")
            }
            conn.execute(
                "INSERT OR REPLACE INTO candidate_checks SELECT ?, image_key, ?, ?, ?, ?, ?, ? FROM candidates"
                " WHERE id = ?",
                (
                    record["candidate"],
                    record["source"],
                    settings,
                    json.dumps(record["findings"]),
                    json.dumps(record["measured"]),
                    json.dumps(details),
                    now(),
                    record["candidate"],
                ),
            )


def drop(workspace: Workspace, reasons: dict[str, list[dict[str, Any]]]) -> int:
    """Move these candidates (id -> the findings that drop it) out of ``candidates``; returns how many moved."""
    moved = 0
    with workspace.catalog.transaction() as conn:
        for candidate_id, findings in reasons.items():
            row = conn.execute("SELECT * FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
            if row is None:
                continue
            columns = [*row.keys(), "reasons", "dropped_at"]
            conn.execute(
                f"INSERT OR REPLACE INTO dropped_candidates ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                (*tuple(row), json.dumps(findings), now()),
            )
            conn.execute("DELETE FROM candidates WHERE id = ?", (candidate_id,))
            moved += 1
    return moved


def dropped(workspace: Workspace, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Dropped candidates (of these runs): id, source, slot, run, reasons, when."""
    where, params = "", ()
    if run_ids:
        where, params = f" WHERE run_id IN ({','.join('?' * len(run_ids))})", tuple(run_ids)
    return [
        {
            "id": row["id"],
            "source_id": row["source_id"],
            "slot": row["slot"],
            "image_key": row["image_key"],
            "run_id": row["run_id"],
            "reasons": json.loads(row["reasons"]),
            "dropped_at": row["dropped_at"],
        }
        for row in workspace.catalog.query(
            f"SELECT * FROM dropped_candidates{where} ORDER BY dropped_at", params
        )
    ]


def run_candidate_ids(workspace: Workspace, run_id: str) -> list[str]:
    """Ids of the candidates this generation run added."""
    return [r[0] for r in workspace.catalog.query("SELECT id FROM candidates WHERE run_id = ?", (run_id,))]


def run_candidates(workspace: Workspace, run_id: str) -> list[str]:
    """Source ids that got candidates in this generation run."""
    return [
        r[0]
        for r in workspace.catalog.query(
            "SELECT DISTINCT source_id FROM candidates WHERE run_id = ?", (run_id,)
        )
    ]


def sources_of_dropped(workspace: Workspace, candidate_ids: Sequence[str]) -> list[str]:
    """The sources of these dropped candidates, sorted."""
    rows = workspace.catalog.rows_in("SELECT source_id FROM dropped_candidates WHERE id", list(candidate_ids))
    return sorted({row[0] for row in rows})
