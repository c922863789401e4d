"""The workspace's SQLite catalog: a versioned schema, migrated forward on open.

Rows that point at files are inserted only after those files exist (see ``medgen.workspace.store``), inside
a transaction, so a crash at any point leaves no row without its file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medgen.errors import MedgenError
from schemas import NUM_CANDIDATES, Candidate, GenerationProvenance, SourceImage

# Each entry migrates the schema from version i to i + 1. Append only; never edit a shipped one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        original_name TEXT NOT NULL,
        image_key TEXT NOT NULL,
        mask_key TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        phash TEXT NOT NULL,
        mask_from_alpha INTEGER NOT NULL,
        added_at TEXT NOT NULL
    );
    CREATE TABLE generation_runs (
        id TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        config TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running'
    );
    CREATE TABLE candidates (
        id TEXT PRIMARY KEY,
        source_id TEXT NOT NULL REFERENCES sources(id),
        slot INTEGER NOT NULL,
        image_key TEXT NOT NULL,
        provenance TEXT NOT NULL,
        injected_defects TEXT,
        run_id TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (source_id, slot)
    );
    CREATE TABLE generation_failures (
        run_id TEXT,
        source_id TEXT NOT NULL,
        error TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE ls_projects (
        ls_project_id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        annotator TEXT,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE tasks (
        ls_task_id INTEGER PRIMARY KEY,
        ls_project_id INTEGER NOT NULL REFERENCES ls_projects(ls_project_id),
        source_id TEXT NOT NULL REFERENCES sources(id),
        annotator TEXT,
        is_gold INTEGER NOT NULL DEFAULT 0,
        pushed_at TEXT NOT NULL,
        UNIQUE (ls_project_id, source_id)
    );
    CREATE TABLE annotations (
        ls_annotation_id INTEGER PRIMARY KEY,
        ls_task_id INTEGER NOT NULL,
        ls_project_id INTEGER NOT NULL,
        annotator TEXT NOT NULL,
        source_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT NOT NULL DEFAULT '[]',
        labels TEXT,
        lead_time_s REAL,
        created_at TEXT,
        updated_at TEXT,
        pulled_at TEXT NOT NULL
    );
    CREATE TABLE exports (
        version TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        created_at TEXT NOT NULL,
        num_samples INTEGER NOT NULL,
        summary TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX candidates_by_source ON candidates(source_id);
    CREATE INDEX tasks_by_source ON tasks(source_id);
    CREATE INDEX annotations_by_source ON annotations(source_id);
    """,
    # 2: annotation push plan (which annotator gets which source), written before any import so a
    # crashed multi-project push resumes with the same assignment.
    """
    CREATE TABLE task_plan (
        source_id TEXT NOT NULL REFERENCES sources(id),
        annotator TEXT NOT NULL,
        is_gold INTEGER NOT NULL DEFAULT 0,
        rank TEXT NOT NULL,
        planned_at TEXT NOT NULL,
        PRIMARY KEY (source_id, annotator)
    );
    """,
    # 3: a Label Studio login per annotator (secrets stay in labelstudio/credentials.json), the
    # user who made each annotation (credited to that person, not to the queue), and the images
    # uploaded to servers that do not share this disk.
    """
    CREATE TABLE ls_accounts (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        email TEXT NOT NULL,
        ls_user_id INTEGER NOT NULL,
        ls_org_id INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    ALTER TABLE annotations ADD COLUMN completed_by INTEGER;
    CREATE TABLE ls_uploads (
        server TEXT NOT NULL,
        image_key TEXT NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (server, image_key)
    );
    """,
    # 4: the pre-fill each task was pushed with (a screener's answers), to measure what annotators kept.
    """
    CREATE TABLE prefills (
        source_id TEXT PRIMARY KEY REFERENCES sources(id),
        model_version TEXT NOT NULL,
        score REAL,
        labels TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 5: rationales written for a question by someone other than the template (a teacher model, `medgen
    # cot`), with the gold answer they explain; rejected ones keep their reason and no text.
    """
    CREATE TABLE rationales (
        sample_id TEXT NOT NULL,
        source_id TEXT NOT NULL REFERENCES sources(id),
        dimension TEXT NOT NULL,
        origin TEXT NOT NULL,
        model TEXT NOT NULL,
        answer TEXT NOT NULL,
        status TEXT NOT NULL,
        text TEXT,
        reason TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (sample_id, origin)
    );
    """,
    # 6: what `medgen status` shows, kept by triggers as rows come and go: counting the rows each time
    # read every index of a large catalog (seconds with it out of the page cache). A source is
    # complete when it has 4 candidates (slots 0-3, unique); REPLACE fires the delete triggers because
    # the catalog's connection turns recursive_triggers on.
    """
    CREATE TABLE counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counts SELECT 'sources', COUNT(*) FROM sources;
    INSERT INTO counts SELECT 'generation_failures', COUNT(*) FROM generation_failures;
    INSERT INTO counts SELECT 'ls_projects', COUNT(*) FROM ls_projects;
    INSERT INTO counts SELECT 'tasks', COUNT(*) FROM tasks;
    INSERT INTO counts SELECT 'exports', COUNT(*) FROM exports;
    INSERT INTO counts SELECT 'candidates', COUNT(*) FROM candidates;
    INSERT INTO counts SELECT 'annotations', COUNT(*) FROM annotations;
    INSERT INTO counts SELECT 'sources_complete', COUNT(*) FROM
        (SELECT source_id FROM candidates GROUP BY source_id HAVING COUNT(*) >= 4);
    INSERT INTO counts SELECT 'annotations_valid', COUNT(*) FROM annotations WHERE status = 'valid';
    CREATE TRIGGER count_sources_added AFTER INSERT ON sources BEGIN UPDATE counts SET n = n + 1 WHERE name = 'sources'; END;
    CREATE TRIGGER count_sources_removed AFTER DELETE ON sources BEGIN UPDATE counts SET n = n - 1 WHERE name = 'sources'; END;
    CREATE TRIGGER count_generation_failures_added AFTER INSERT ON generation_failures BEGIN UPDATE counts SET n = n + 1 WHERE name = 'generation_failures'; END;
    CREATE TRIGGER count_generation_failures_removed AFTER DELETE ON generation_failures BEGIN UPDATE counts SET n = n - 1 WHERE name = 'generation_failures'; END;
    CREATE TRIGGER count_ls_projects_added AFTER INSERT ON ls_projects BEGIN UPDATE counts SET n = n + 1 WHERE name = 'ls_projects'; END;
    CREATE TRIGGER count_ls_projects_removed AFTER DELETE ON ls_projects BEGIN UPDATE counts SET n = n - 1 WHERE name = 'ls_projects'; END;
    CREATE TRIGGER count_tasks_added AFTER INSERT ON tasks BEGIN UPDATE counts SET n = n + 1 WHERE name = 'tasks'; END;
    CREATE TRIGGER count_tasks_removed AFTER DELETE ON tasks BEGIN UPDATE counts SET n = n - 1 WHERE name = 'tasks'; END;
    CREATE TRIGGER count_exports_added AFTER INSERT ON exports BEGIN UPDATE counts SET n = n + 1 WHERE name = 'exports'; END;
    CREATE TRIGGER count_exports_removed AFTER DELETE ON exports BEGIN UPDATE counts SET n = n - 1 WHERE name = 'exports'; END;
    CREATE TRIGGER count_candidates_added AFTER INSERT ON candidates BEGIN
        UPDATE counts SET n = n + 1 WHERE name = 'candidates';
        UPDATE counts SET n = n + 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = NEW.source_id) = 4;
    END;
    CREATE TRIGGER count_candidates_removed AFTER DELETE ON candidates BEGIN
        UPDATE counts SET n = n - 1 WHERE name = 'candidates';
        UPDATE counts SET n = n - 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = OLD.source_id) = 3;
    END;
    CREATE TRIGGER count_candidates_moved AFTER UPDATE OF source_id ON candidates
    WHEN OLD.source_id IS NOT NEW.source_id BEGIN
        UPDATE counts SET n = n - 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = OLD.source_id) = 3;
        UPDATE counts SET n = n + 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = NEW.source_id) = 4;
    END;
    CREATE TRIGGER count_annotations_added AFTER INSERT ON annotations BEGIN
        UPDATE counts SET n = n + 1 WHERE name = 'annotations';
        UPDATE counts SET n = n + 1 WHERE name = 'annotations_valid' AND NEW.status = 'valid';
    END;
    CREATE TRIGGER count_annotations_removed AFTER DELETE ON annotations BEGIN
        UPDATE counts SET n = n - 1 WHERE name = 'annotations';
        UPDATE counts SET n = n - 1 WHERE name = 'annotations_valid' AND OLD.status = 'valid';
    END;
    CREATE TRIGGER count_annotations_status AFTER UPDATE OF status ON annotations BEGIN
        UPDATE counts SET n = n + (NEW.status = 'valid') - (OLD.status = 'valid') WHERE name = 'annotations_valid';
    END;
    """,
    # 7: nothing pulled is ever lost. A queue whose project is gone from Label Studio is retired (kept:
    # its annotations keep their queue) when `annotate repair` makes it again; every version of an annotation that a later pull replaced (updated, deleted in Label
    # Studio) is kept in the history; a Label Studio database found older than the catalog (restored
    # from a backup) is recorded with the id ranges it lost.
    """
    ALTER TABLE ls_projects ADD COLUMN retired_at TEXT;
    CREATE TABLE ls_restores (
        detected_at TEXT NOT NULL,
        counters TEXT NOT NULL
    );
    CREATE TABLE annotation_history (
        ls_annotation_id INTEGER NOT NULL,
        ls_task_id INTEGER NOT NULL,
        ls_project_id INTEGER NOT NULL,
        annotator TEXT NOT NULL,
        source_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT NOT NULL,
        labels TEXT,
        lead_time_s REAL,
        created_at TEXT,
        updated_at TEXT,
        pulled_at TEXT NOT NULL,
        completed_by INTEGER,
        replaced_at TEXT NOT NULL
    );
    CREATE INDEX annotation_history_by_id ON annotation_history(ls_annotation_id);
    """,
    # 8: the status counts' triggers take the taxonomy's number of candidates per source (migration 6 wrote
    # the number); 'sources_complete' is counted again with it.
    f"""
    DROP TRIGGER count_candidates_added;
    DROP TRIGGER count_candidates_removed;
    DROP TRIGGER count_candidates_moved;
    CREATE TRIGGER count_candidates_added AFTER INSERT ON candidates BEGIN
        UPDATE counts SET n = n + 1 WHERE name = 'candidates';
        UPDATE counts SET n = n + 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = NEW.source_id) = {NUM_CANDIDATES};
    END;
    CREATE TRIGGER count_candidates_removed AFTER DELETE ON candidates BEGIN
        UPDATE counts SET n = n - 1 WHERE name = 'candidates';
        UPDATE counts SET n = n - 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = OLD.source_id) = {NUM_CANDIDATES - 1};
    END;
    CREATE TRIGGER count_candidates_moved AFTER UPDATE OF source_id ON candidates
    WHEN OLD.source_id IS NOT NEW.source_id BEGIN
        UPDATE counts SET n = n - 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = OLD.source_id) = {NUM_CANDIDATES - 1};
        UPDATE counts SET n = n + 1 WHERE name = 'sources_complete'
            AND (SELECT COUNT(*) FROM candidates WHERE source_id = NEW.source_id) = {NUM_CANDIDATES};
    END;
    UPDATE counts SET n = (SELECT COUNT(*) FROM
        (SELECT source_id FROM candidates GROUP BY source_id HAVING COUNT(*) >= {NUM_CANDIDATES}))
        WHERE name = 'sources_complete';
    """,
    # 9: automatic checks of candidates against their originals (`medgen check`), with the image and the
    # settings they were measured with; candidates `generate --drop-failing` kept from annotators, moved here
    # with the reason (their files stay in the store; a slot made again reuses the candidate id).
    """
    CREATE TABLE candidate_checks (
        candidate_id TEXT PRIMARY KEY,
        image_key TEXT NOT NULL,
        source_id TEXT NOT NULL,
        settings TEXT NOT NULL,
        findings TEXT NOT NULL,
        measured TEXT NOT NULL,
        details TEXT NOT NULL,
        checked_at TEXT NOT NULL
    );
    CREATE INDEX candidate_checks_by_source ON candidate_checks(source_id);
    CREATE TABLE dropped_candidates (
        id TEXT NOT NULL,
        source_id TEXT NOT NULL,
        slot INTEGER NOT NULL,
        image_key TEXT NOT NULL,
        provenance TEXT NOT NULL,
        injected_defects TEXT,
        run_id TEXT,
        created_at TEXT NOT NULL,
        reasons TEXT NOT NULL,
        dropped_at TEXT NOT NULL,
        PRIMARY KEY (id, image_key)
    );
    CREATE INDEX dropped_candidates_by_source ON dropped_candidates(source_id);
    """,
    # 10: the review loop (`medgen annotate review`): one row per reviewed annotation, why it was picked, the
    # reviewer's task and decision with its comment, and when a rejected answer went back to its author (as a
    # new task of their queue that replaced the old one).
    """
    CREATE TABLE reviews (
        ls_annotation_id INTEGER PRIMARY KEY,
        source_id TEXT NOT NULL,
        annotator TEXT NOT NULL,
        ls_task_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        review_task_id INTEGER,
        review_project_id INTEGER,
        decision TEXT,
        comment TEXT,
        expected TEXT,
        decided_at TEXT,
        returned_task_id INTEGER,
        returned_at TEXT,
        queued_at TEXT NOT NULL
    );
    CREATE INDEX reviews_by_task ON reviews(ls_task_id);
    CREATE INDEX reviews_by_review_task ON reviews(review_task_id);
    """,
    # 11: where each injected defect shows (synthetic candidates; JSON list of regions, NULL when unknown).
    """
    ALTER TABLE candidates ADD COLUMN injected_regions TEXT;
    ALTER TABLE dropped_candidates ADD COLUMN injected_regions TEXT;
    """,
    # 12: whether a queue's page marks regions (`push --regions`): 0 no, 1 optional, 2 required per tag.
    """
    ALTER TABLE ls_projects ADD COLUMN regions INTEGER NOT NULL DEFAULT 0;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
IN_CHUNK = 500  # values per ``IN (...)`` query


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration (a trigger's body has semicolons of its own)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Catalog:
    """Thin, explicit access to the catalog. Other stages may run their own SQL via ``transaction``."""

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=60000")
        # INSERT OR REPLACE then fires the delete triggers that keep the status counts (migration 6).
        self.conn.execute("PRAGMA recursive_triggers=ON")
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise MedgenError(
                f"{self.path} has catalog schema v{version}, newer than this medgen (v{SCHEMA_VERSION}): upgrade medgen"
            )
        for index in range(version, SCHEMA_VERSION):
            with self.transaction() as conn:
                for statement in _statements(MIGRATIONS[index]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {index + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def count(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(self.conn.execute(sql, params).fetchone()[0])

    # sources -----------------------------------------------------------------------------------

    def add_source(self, source: SourceImage) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source.id,
                    source.original_name,
                    source.image_key,
                    source.mask_key,
                    source.width,
                    source.height,
                    source.phash,
                    int(source.mask_from_alpha),
                    source.added_at.isoformat(),
                ),
            )

    def source(self, source_id: str) -> SourceImage | None:
        rows = self.query("SELECT * FROM sources WHERE id = ?", (source_id,))
        return _source(rows[0]) if rows else None

    def sources(self) -> list[SourceImage]:
        return list(self.iter_sources())

    def iter_sources(self, chunk: int = 500) -> Iterator[SourceImage]:
        """``sources()``'s sources in its order, read ``chunk`` rows at a time (none held for the workspace)."""
        cursor = self.conn.execute("SELECT * FROM sources ORDER BY added_at, id")
        while rows := cursor.fetchmany(chunk):
            yield from (_source(row) for row in rows)

    def source_phashes(self) -> Iterator[tuple[int, str]]:
        """(row number, perceptual hash) of every source, in the order they were added, from a cursor."""
        cursor = self.conn.execute("SELECT rowid, phash FROM sources ORDER BY added_at, id")
        yield from ((int(row["rowid"]), row["phash"]) for row in cursor)

    def source_rowid(self, source_id: str) -> int | None:
        """The row number of a source (what ``source_phashes`` names it by), or None when it is not here."""
        rows = self.query("SELECT rowid FROM sources WHERE id = ?", (source_id,))
        return int(rows[0]["rowid"]) if rows else None

    def source_at(self, rowid: int) -> str:
        """The id of the source at a row number."""
        return str(self.query("SELECT id FROM sources WHERE rowid = ?", (rowid,))[0]["id"])

    def counts(self) -> dict[str, int]:
        """What ``medgen status`` shows, kept by triggers (migration 6): no table is scanned."""
        return dict(self.conn.execute("SELECT name, n FROM counts").fetchall())

    def source_names(self) -> list[tuple[str, str]]:
        """(id, original file name) of every source."""
        return [
            (row["id"], row["original_name"]) for row in self.query("SELECT id, original_name FROM sources")
        ]

    def sources_by_id(self, ids: Sequence[str]) -> dict[str, SourceImage]:
        """The sources with these ids, in one query per 500 (not one per source)."""
        return {row["id"]: _source(row) for row in self.rows_in("SELECT * FROM sources WHERE id", ids)}

    # candidates --------------------------------------------------------------------------------

    def add_candidates(self, candidates: list[Candidate], run_id: str | None = None) -> int:
        """Insert candidates whose files exist; existing (source, slot) pairs are kept. Returns rows added."""
        added = 0
        with self.transaction() as conn:
            for candidate in candidates:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        candidate.id,
                        candidate.source_id,
                        candidate.slot,
                        candidate.image_key,
                        candidate.provenance.model_dump_json(),
                        None
                        if candidate.injected_defects is None
                        else json.dumps(candidate.injected_defects),
                        run_id,
                        now(),
                        None
                        if candidate.injected_regions is None
                        else json.dumps([r.model_dump(mode="json") for r in candidate.injected_regions]),
                    ),
                )
                added += cursor.rowcount
        return added

    def candidates(self, source_id: str | None = None) -> list[Candidate]:
        if source_id is None:
            rows = self.query("SELECT * FROM candidates ORDER BY source_id, slot")
        else:
            rows = self.query("SELECT * FROM candidates WHERE source_id = ? ORDER BY slot", (source_id,))
        return [_candidate(row) for row in rows]

    def candidates_by_source(self, source_ids: Sequence[str]) -> dict[str, list[Candidate]]:
        """Each of these sources' candidates in slot order (empty list: none), one query per 500 sources."""
        found: dict[str, list[Candidate]] = {source_id: [] for source_id in source_ids}
        rows = self.rows_in(
            "SELECT * FROM candidates WHERE source_id", source_ids, "ORDER BY source_id, slot"
        )
        for row in rows:
            found[row["source_id"]].append(_candidate(row))
        return found

    def rows_in(self, select: str, values: Sequence[Any], order: str = "") -> list[sqlite3.Row]:
        """``select`` + `` IN (...)`` over ``values``, in chunks that stay under SQLite's variable limit."""
        rows: list[sqlite3.Row] = []
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), IN_CHUNK):
            chunk = unique[start : start + IN_CHUNK]
            rows += self.query(f"{select} IN ({', '.join('?' * len(chunk))}) {order}", tuple(chunk))
        return rows

    def candidate_sources(self) -> list[str]:
        """Ids of the sources that have any candidate, in id order."""
        return [
            row["source_id"]
            for row in self.query("SELECT DISTINCT source_id FROM candidates ORDER BY source_id")
        ]

    def complete_sources(self) -> list[str]:
        """Ids of the sources that have all their candidates, in id order."""
        rows = self.query(
            "SELECT source_id FROM candidates GROUP BY source_id HAVING COUNT(*) = ? ORDER BY source_id",
            (NUM_CANDIDATES,),
        )
        return [row["source_id"] for row in rows]

    def candidate_slots(self) -> dict[str, set[int]]:
        """Slots already filled, per source."""
        slots: dict[str, set[int]] = {}
        for row in self.query("SELECT source_id, slot FROM candidates"):
            slots.setdefault(row["source_id"], set()).add(row["slot"])
        return slots

    def referenced_keys(self) -> set[str]:
        """Every store key a catalog row points at."""
        keys: set[str] = set()
        for row in self.query("SELECT image_key, mask_key FROM sources"):
            keys.update((row["image_key"], row["mask_key"]))
        keys.update(row["image_key"] for row in self.query("SELECT image_key FROM candidates"))
        keys.update(row["image_key"] for row in self.query("SELECT image_key FROM dropped_candidates"))
        return keys

    def referenced_among(self, keys: set[str]) -> set[str]:
        """Those of ``keys`` a catalog row points at.

        The rows' keys are read from a cursor and only ``keys`` are held, not every key of the catalog
        (``referenced_keys``: several strings per source).
        """
        if not keys:
            return set()
        found: set[str] = set()
        for sql in (
            "SELECT image_key FROM sources UNION ALL SELECT mask_key FROM sources",
            "SELECT image_key FROM candidates",
            "SELECT image_key FROM dropped_candidates",  # kept from annotators, not deleted
        ):
            found.update(key for (key,) in self.conn.execute(sql) if key in keys)
        return found


def _source(row: sqlite3.Row) -> SourceImage:
    return SourceImage(
        id=row["id"],
        original_name=row["original_name"],
        image_key=row["image_key"],
        mask_key=row["mask_key"],
        width=row["width"],
        height=row["height"],
        phash=row["phash"],
        mask_from_alpha=bool(row["mask_from_alpha"]),
        added_at=datetime.fromisoformat(row["added_at"]),
    )


def _candidate(row: sqlite3.Row) -> Candidate:
    return Candidate(
        id=row["id"],
        source_id=row["source_id"],
        slot=row["slot"],
        image_key=row["image_key"],
        provenance=GenerationProvenance.model_validate_json(row["provenance"]),
        injected_defects=None if row["injected_defects"] is None else json.loads(row["injected_defects"]),
        injected_regions=None if row["injected_regions"] is None else json.loads(row["injected_regions"]),
    )
