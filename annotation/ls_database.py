"""The workspace server's own database: PostgreSQL settings and connections, its annotation rows, its id counters.

`annotate pull` reads annotation rows straight from it (read-only, streamed, a project at a time);
id counters are kept ahead of every id the catalog holds.

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
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from annotation.tables import catalog_maxima, record_restore
from annotation.validation import RawAnnotation, canonical_time
from medgen.errors import MedgenError, one_line
from medgen.workspace import Workspace


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
        reason = one_line(error)
        raise MedgenError(f"PostgreSQL at {redact(url)} is unreachable: {reason}") from None


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


# ---- annotation rows, read-only ------------------------------------------------------------------------

DB_COLUMNS = {
    "id",
    "task_id",
    "project_id",
    "result",
    "was_cancelled",
    "lead_time",
    "created_at",
    "updated_at",
    "completed_by_id",
}
# By the task's project: task_completion.project_id is nullable in Label Studio, and a row without
# it must still be found (else a pulled annotation would look deleted).
SELECT = (
    "SELECT c.id, c.task_id, t.project_id, c.result, c.was_cancelled, c.lead_time, c.created_at, c.updated_at, "
    "c.completed_by_id FROM task_completion c JOIN task t ON t.id = c.task_id WHERE t.project_id = {} ORDER BY c.task_id, c.id"
)
COUNT = "SELECT COUNT(*) FROM task_completion c JOIN task t ON t.id = c.task_id WHERE t.project_id = {}"
DB_TIMEOUT_S = 30.0  # how long a read waits for a lock Label Studio holds
CHUNK = 2000  # annotations validated and committed per transaction


Database = Path | str
"""Label Studio's own database: the SQLite file, or the PostgreSQL URL (from the credentials file)."""


def fetch_project_db(database: Database, project_id: int) -> list[RawAnnotation]:
    """Every annotation of one project (cancelled ones included) read from Label Studio's database, read-only.

    Raises:
        DatabaseUnavailable: the database is locked, mid-journal or unreachable (the caller uses the API).
    """
    return [raw for chunk in iter_project_db(database, project_id) for raw in chunk]


def _scalar(database: Database, sql: str, project_id: int) -> int:
    """One number from Label Studio's database, read only; ``sql``'s ``{}`` takes the driver's placeholder."""
    if isinstance(database, Path):
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=DB_TIMEOUT_S)) as conn:
            return int(conn.execute(sql.format("?"), (project_id,)).fetchone()[0])
    with connect_database(database, read_only=True) as conn:
        return int(conn.execute(sql.format("%s"), (project_id,)).fetchone()[0])


def count_project_db(database: Database, project_id: int) -> int:
    """How many annotations one project holds in Label Studio's database (for the progress bar)."""
    try:
        return _scalar(database, COUNT, project_id)
    except Exception as error:  # sqlite3.Error, psycopg.Error
        raise DatabaseUnavailable(one_line(error, kind=True)) from None


def project_exists_db(database: Database, project_id: int) -> bool:
    """Whether Label Studio's database still holds the project (an admin may have deleted it)."""
    sql = "SELECT COUNT(*) FROM project WHERE id = {}"
    try:
        return bool(_scalar(database, sql, project_id))
    except Exception as error:  # sqlite3.Error, psycopg.Error
        raise MedgenError(
            f"Label Studio's database could not be read ({one_line(error, kind=True)}): rerun the command"
        ) from None


def iter_project_db(
    database: Database, project_id: int, chunk: int | None = None
) -> Iterator[list[RawAnnotation]]:
    """One project's annotations a chunk at a time, ordered by task; a task's annotations stay together.

    Raises:
        DatabaseUnavailable: the database cannot be read (before the first chunk, or midway).
    """
    try:
        with ExitStack() as stack:
            if isinstance(database, Path):
                conn = stack.enter_context(
                    closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=DB_TIMEOUT_S))
                )
                cursor = conn.execute(SELECT.format("?"), (project_id,))
            else:
                conn = stack.enter_context(connect_database(database, read_only=True))
                cursor = conn.cursor(name="medgen_pull")  # server-side: rows arrive as they are fetched
                cursor.execute(SELECT.format("%s"), (project_id,))
            pending: list[RawAnnotation] = []
            while rows := cursor.fetchmany(chunk or CHUNK):
                pending += [_raw(row) for row in rows]
                last_task = pending[-1].task_id
                cut = (
                    next((i for i in range(len(pending) - 1, -1, -1) if pending[i].task_id != last_task), -1)
                    + 1
                )
                if cut:
                    yield pending[:cut]
                    pending = pending[cut:]
            if pending:
                yield pending
    except DatabaseUnavailable:
        raise
    except Exception as error:  # sqlite3.Error, psycopg.Error
        raise DatabaseUnavailable(one_line(error, kind=True)) from None


def _raw(row: Any) -> RawAnnotation:
    return RawAnnotation(
        id=int(row[0]),
        task_id=int(row[1]),
        project_id=int(row[2]),
        result=list((json.loads(row[3]) if isinstance(row[3], str) else row[3]) or []),
        cancelled=bool(row[4]),
        lead_time=row[5],
        created_at=canonical_time(row[6]),
        updated_at=canonical_time(row[7]),
        completed_by=int(row[8]) if row[8] is not None else None,
    )


class DatabaseUnavailable(Exception):
    """Label Studio's database could not be read now; the export API answers instead."""


def holds_annotations(database: Database) -> bool:
    """Whether Label Studio's ``task_completion`` table has the columns medgen reads.

    Raises:
        DatabaseUnavailable: the database is locked or unreachable now.
    """
    try:
        if isinstance(database, Path):
            with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=DB_TIMEOUT_S)) as conn:
                columns = {row[1] for row in conn.execute("PRAGMA table_info(task_completion)")}
        else:
            with connect_database(database, read_only=True) as conn:
                rows = conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'task_completion'"
                ).fetchall()
            columns = {row[0] for row in rows}
    except Exception as error:  # sqlite3.Error (locked, mid-journal), psycopg.Error (unreachable, refused)
        raise DatabaseUnavailable(one_line(error, kind=True)) from None
    return columns >= DB_COLUMNS
