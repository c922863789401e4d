"""An export's manifest (sample id -> split and content hash) and its changelog against the previous version.

The hashes are kept on disk while the export runs, in a throw-away SQLite file, not in a dict: the dict,
its JSON string and the changelog's copies of it were what grew the export's peak memory most with the
number of samples (benchmarks/README.md, "Scale"). ``manifest.json`` is then streamed from it, byte for
byte what ``json.dumps(manifest, indent=1, sort_keys=True)`` writes, and the changelog is four joins.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

BATCH = 2000  # rows per insert


class SampleHashes:
    """Sample id -> (split, content hash) of one export, in a SQLite file deleted by ``close``."""

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = OFF")  # scratch: a crash discards the export's folder anyway
        self.conn.execute("PRAGMA synchronous = OFF")
        for table in ("current", "previous"):
            self.conn.execute(
                f"CREATE TABLE {table} (id TEXT PRIMARY KEY, split TEXT NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID"
            )
        self.pending: list[tuple[str, str, str]] = []

    def add(self, split: str, sample_id: str, digest: str) -> None:
        self.pending.append((sample_id, split, digest))
        if len(self.pending) >= BATCH:
            self._flush("current", self.pending)
            self.pending = []

    def _flush(self, table: str, rows: list[tuple[str, str, str]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", rows)
        self.conn.execute("COMMIT")

    def load_previous(self, manifest: Path) -> None:
        """The previous version's hashes, for ``write_changelog``, streamed from its ``manifest.json``.

        Parsed event by event (ijson), not loaded: ``json.loads`` of a large manifest would hold all of it
        on top of the export's own peak.
        """
        import ijson

        rows: list[tuple[str, str, str]] = []
        split = sample_id = None
        with manifest.open("rb") as handle:
            for prefix, event, value in ijson.parse(handle):
                if event == "map_key" and prefix == "splits":
                    split = value
                elif event == "map_key" and prefix == f"splits.{split}":
                    sample_id = value
                elif event == "string" and split is not None and prefix == f"splits.{split}.{sample_id}":
                    rows.append((sample_id, split, value))
                    if len(rows) >= BATCH:
                        self._flush("previous", rows)
                        rows = []
        self._flush("previous", rows)

    def flush(self) -> None:
        self._flush("current", self.pending)
        self.pending = []

    def splits(self) -> list[str]:
        self.flush()
        return [row[0] for row in self.conn.execute("SELECT DISTINCT split FROM current ORDER BY split")]

    def items(self, split: str) -> Iterator[tuple[str, str]]:
        # SQLite compares TEXT as UTF-8 bytes, the same order as Python's sort of str.
        yield from self.conn.execute("SELECT id, digest FROM current WHERE split = ? ORDER BY id", (split,))

    def count(self, table: str = "current") -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        self.conn.close()
        self.path.unlink(missing_ok=True)


def write_manifest(path: Path, fields: dict[str, Any], hashes: SampleHashes) -> None:
    """``fields`` plus ``"splits": {split: {sample id: hash}}``, as ``json.dumps(indent=1, sort_keys=True)``."""
    marker = "\0splits\0"
    head, tail = json.dumps({**fields, "splits": marker}, indent=1, sort_keys=True).split(json.dumps(marker))
    with path.open("w", encoding="utf-8") as out:
        out.write(head)
        splits = hashes.splits()
        if not splits:
            out.write("{}")
        else:
            out.write("{")
            for i, split in enumerate(splits):
                out.write(f"{',' if i else ''}\n  {json.dumps(split)}: {{")
                _write_items(out, hashes.items(split))
                out.write("\n  }")
            out.write("\n }")
        out.write(tail + "\n")


def _write_items(out: IO[str], items: Iterator[tuple[str, str]]) -> None:
    separator = "\n"
    for sample_id, digest in items:
        out.write(f"{separator}   {json.dumps(sample_id)}: {json.dumps(digest)}")
        separator = ",\n"


CHANGES = {  # section title: (count's name, query of (sample id, split shown))
    "Added": (
        "added",
        "SELECT c.id, c.split FROM current c LEFT JOIN previous p ON p.id = c.id WHERE p.id IS NULL",
    ),
    "Removed": (
        "removed",
        "SELECT p.id, p.split FROM previous p LEFT JOIN current c ON c.id = p.id WHERE c.id IS NULL",
    ),
    "Changed": (
        "changed",
        "SELECT c.id, c.split FROM current c JOIN previous p ON p.id = c.id WHERE p.digest != c.digest",
    ),
    "Moved between splits": (
        "moved",
        "SELECT c.id, c.split FROM current c JOIN previous p ON p.id = c.id WHERE p.split != c.split",
    ),
}


def write_changelog(path: Path, version: str, hashes: SampleHashes, previous: str | None) -> dict[str, int]:
    """``changelog.md``: what was added, removed, changed or moved since ``previous``; the counts."""
    hashes.flush()
    total = hashes.count()
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# Changelog of {version}\n\n")
        if previous is None:
            out.write(f"First version: {total} samples.\n")
            return {"added": total, "removed": 0, "changed": 0, "moved": 0}
        changes = {
            name: int(hashes.conn.execute(f"SELECT count(*) FROM ({query})").fetchone()[0])
            for name, query in CHANGES.values()
        }
        out.write(f"Compared with {previous}: {hashes.count('previous')} → {total} samples.\n\n")
        out.write("\n".join(f"- {name}: {count}" for name, count in changes.items()) + "\n")
        for title, (name, query) in CHANGES.items():
            if changes[name]:
                out.write(f"\n## {title}\n\n")
                for sample_id, split in hashes.conn.execute(f"{query} ORDER BY 1"):
                    out.write(f"- `{sample_id}` ({split})\n")
    return changes
