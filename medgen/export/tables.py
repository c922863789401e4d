"""The export stage's catalog tables, and all of their SQL: exported versions, and teacher rationales.

``exports``: one row per version written (its folder, when, how many samples, a summary that ``publish``
adds the Hub commits to). ``rationales``: a teacher model's chain of thought per question (written by
`medgen cot`, read by the export), kept with the answer it explains and, when rejected, the reason.
"""

from __future__ import annotations

import json
from typing import Any

from medgen.workspace import Workspace
from medgen.workspace.catalog import now


def export_folders(workspace: Workspace) -> list[tuple[str, str]]:
    """(version, folder) of every recorded export, newest first."""
    rows = workspace.catalog.query("SELECT version, path FROM exports ORDER BY created_at DESC, rowid DESC")
    return [(r["version"], r["path"]) for r in rows]


def is_recorded(workspace: Workspace, version: str) -> bool:
    return bool(workspace.catalog.query("SELECT 1 FROM exports WHERE version = ?", (version,)))


def record_export(
    workspace: Workspace, version: str, path: str, created_at: str, num_samples: int, summary: dict[str, Any]
) -> None:
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO exports VALUES (?, ?, ?, ?, ?)",
            (version, path, created_at, num_samples, json.dumps(summary)),
        )


def add_publication(workspace: Workspace, version: str, publication: dict[str, Any]) -> None:
    """Append a Hub publication (repo, tag, commit) to a recorded version's summary."""
    with workspace.catalog.transaction() as conn:
        row = conn.execute("SELECT summary FROM exports WHERE version = ?", (version,)).fetchone()
        if row is None:
            return
        summary = json.loads(row["summary"] or "{}")
        summary.setdefault("published", []).append(publication)
        conn.execute("UPDATE exports SET summary = ? WHERE version = ?", (json.dumps(summary), version))


RATIONALE_COLUMNS = (
    "sample_id",
    "source_id",
    "dimension",
    "origin",
    "model",
    "answer",
    "status",
    "text",
    "reason",
)


def save_rationale(workspace: Workspace, **values: Any) -> None:
    """One question's rationale (``RATIONALE_COLUMNS``), replacing an earlier one of the same origin."""
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO rationales VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*(values[column] for column in RATIONALE_COLUMNS), now()),
        )


def rationales(workspace: Workspace, origin: str, status: str | None = None) -> list[dict[str, Any]]:
    """The rationales of ``origin`` (with ``status`` when given), in sample id order."""
    where, params = "origin = ?", [origin]
    if status is not None:
        where, params = where + " AND status = ?", [origin, status]
    rows = workspace.catalog.query(
        f"SELECT * FROM rationales WHERE {where} ORDER BY sample_id", tuple(params)
    )
    return [dict(r) for r in rows]


def rationale_totals(workspace: Workspace, origin: str) -> dict[str, int]:
    """Rationales of ``origin`` per status."""
    rows = workspace.catalog.query(
        "SELECT status, COUNT(*) AS n FROM rationales WHERE origin = ? GROUP BY status", (origin,)
    )
    return {r["status"]: int(r["n"]) for r in rows}
