"""The workspace server's own database (PostgreSQL settings and connections), and its id counters.

Id counters are kept ahead of every id the catalog holds.

The catalog keys projects, tasks and annotations by their Label Studio ids. A Label Studio database
restored from an older backup counts from where the backup stopped, so its next task or annotation
would take an id the catalog already gave to another one, and a pull would mistake one for the other.
Before the server starts, ``advance_counters`` moves each counter past the highest id the catalog
knows (SQLite's ``sqlite_sequence``, PostgreSQL's sequences), so that cannot happen. Plain SQL, no
Django: it runs at every ``annotate serve`` and costs milliseconds.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from medgen.errors import MedgenError
from medgen.workspace import Workspace
from medgen.workspace.catalog import now

CATALOG_MAXIMA = {
    "project": "SELECT MAX(ls_project_id) FROM ls_projects",
    "task": "SELECT MAX(ls_task_id) FROM tasks",
    "task_completion": "SELECT MAX(id) FROM (SELECT MAX(ls_annotation_id) AS id FROM annotations "
    "UNION ALL SELECT MAX(ls_annotation_id) FROM annotation_history)",
    "htx_user": "SELECT MAX(ls_user_id) FROM ls_accounts",
    "organization": "SELECT MAX(ls_org_id) FROM ls_accounts",
}
"""Label Studio table -> the highest of its ids the catalog holds."""


def database_settings(url: str) -> dict[str, str]:
    """Label Studio's environment for a ``postgresql://user:password@host:port/name`` database URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
        raise MedgenError(
            f"--database {redact(url)} is not a PostgreSQL URL: use postgresql://USER:PASSWORD@HOST:PORT/NAME"
        )
    return {
        "DJANGO_DB": "default",
        "POSTGRE_NAME": unquote(parts.path.strip("/")),
        "POSTGRE_USER": unquote(parts.username or "postgres"),
        "POSTGRE_PASSWORD": unquote(parts.password or ""),
        "POSTGRE_HOST": parts.hostname,
        "POSTGRE_PORT": str(parts.port or 5432),
    }


def redact(url: str) -> str:
    """A database URL without its password, safe to print and to record."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def connect_database(url: str, read_only: bool = False) -> Any:
    """A psycopg connection to the PostgreSQL database of ``url`` (``psycopg.Error`` when unreachable)."""
    import psycopg

    settings = database_settings(url)
    return psycopg.connect(
        dbname=settings["POSTGRE_NAME"],
        user=settings["POSTGRE_USER"],
        password=settings["POSTGRE_PASSWORD"],
        host=settings["POSTGRE_HOST"],
        port=int(settings["POSTGRE_PORT"]),
        connect_timeout=10,
        options="-c default_transaction_read_only=on" if read_only else None,
    )


def check_database(url: str) -> None:
    """Refuse to start when the PostgreSQL server cannot be reached, in one line."""
    import psycopg

    try:
        with connect_database(url):
            pass
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise MedgenError(f"PostgreSQL at {redact(url)} is unreachable: {reason}") from None


def catalog_maxima(workspace: Workspace) -> dict[str, int]:
    found = {
        table: workspace.catalog.conn.execute(sql).fetchone()[0] for table, sql in CATALOG_MAXIMA.items()
    }
    return {table: int(value) for table, value in found.items() if value is not None}


def advance_counters(workspace: Workspace, database: Path | str) -> list[str]:
    """Move every id counter of the (stopped) server's ``database`` (SQLite file, or PostgreSQL URL) past
    the catalog's ids; one note when it moved any."""
    wanted = catalog_maxima(workspace)
    if not wanted:
        return []
    if isinstance(database, str):
        moved = _advance_postgres(database, wanted)
    else:
        moved = _advance_sqlite(database, wanted) if database.is_file() else {}
    if not moved:
        return []
    record_restore(workspace, moved)
    tables = ", ".join(f"{table} {old} -> {new}" for table, (old, new) in sorted(moved.items()))
    return [
        "Label Studio's database is older than the catalog (restored from a backup?): its id counters "
        f"were moved past the catalog's ({tables}); `medgen annotate repair` recreates what it lacks"
    ]


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


def _advance_sqlite(path: Path, wanted: dict[str, int]) -> dict[str, tuple[int, int]]:
    with closing(sqlite3.connect(str(path), timeout=30)) as conn:
        current = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
        moved = {t: (int(current.get(t, 0)), n) for t, n in wanted.items() if int(current.get(t, 0)) < n}
        with conn:
            for table, (_, least) in moved.items():
                if table in current:
                    conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (least, table))
                else:
                    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, least))
    return moved


def _advance_postgres(url: str, wanted: dict[str, int]) -> dict[str, tuple[int, int]]:
    moved = {}
    with connect_database(url) as conn:
        for table, least in wanted.items():
            sequence = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
            if sequence is None:
                continue
            last, called = conn.execute(f"SELECT last_value, is_called FROM {sequence}").fetchone()
            current = int(last) if called else int(last) - 1
            if current < least:
                conn.execute("SELECT setval(%s, %s)", (sequence, least))
                moved[table] = (current, least)
    return moved
