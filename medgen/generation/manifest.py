"""Each rank's run manifest (``runs/<run>/rank-<r>.jsonl``), its merge into the catalog, and recovery of dead runs.

Crash safety (kill -9 at any point, or a power cut): a manifest line is written only after its file,
and a catalog row only after its files were made durable, so no row ever lacks its file. Before
writing a file the rank logs its key as ``pending``; every run starts by merging the manifests of
dead runs (their writer's file lock is free) and removing their pending files that no row
references. A dead run's files were never flushed one by one: recovery flushes them, then merges
only the candidates whose file hashes to its key (a power cut can leave a renamed file empty or
torn; such a file is removed and made again). A rerun then makes exactly what is still missing:
every source ends with N candidates, none twice.

Why one flush per run: one ``fsync`` per candidate kept the store thread waiting on the disk, and
generation on it, while most files are written back by the kernel long before the run ends anyway
(benchmarks/README.md, "One flush per run").
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from medgen.errors import MedgenError
from medgen.files import read_ahead
from medgen.generation.distributed import ranks
from medgen.generation.tables import end_run, record_failures
from medgen.workspace import Workspace
from schemas import Candidate


def manifest_path(workspace: Workspace, run_id: str, rank: int) -> Path:
    return workspace.runs_dir / run_id / f"rank-{rank}.jsonl"


def _merged_marker(manifest: Path) -> Path:
    return manifest.with_suffix(".merged")


MERGE_CHUNK = 2000  # candidate rows per catalog transaction when merging a manifest


def manifest_entries(path: Path) -> Iterator[dict[str, Any]]:
    """One manifest's entries, line by line; a torn last line (crash) is skipped."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_manifest(path: Path) -> tuple[list[Candidate], list[dict[str, str]], set[str]]:
    """Candidates, failures and pending keys of one manifest (all in memory: tests and small runs)."""
    candidates, failures, pending = [], [], set()
    for entry in manifest_entries(path):
        if entry["kind"] == "candidate":
            candidates.append(Candidate.model_validate(entry["candidate"]))
        elif entry["kind"] == "failure":
            failures.append(entry)
        elif entry["kind"] == "pending":
            pending.add(entry["key"])
    return candidates, failures, pending


def merge_manifest(workspace: Workspace, path: Path, check: bool = False) -> tuple[int, list[dict[str, str]]]:
    """Insert one manifest's candidates (those whose file exists) and failures; idempotent. Returns (rows added, failures).

    ``check``: only candidates whose file hashes to its key (a dead run's files may be torn by a power
    cut); their files are read ahead, as a recovery after a reboot reads them from a cold disk.
    Streamed: ``MERGE_CHUNK`` candidates per transaction, so memory does not grow with the run's size.
    """
    run_id = path.parent.name
    store = workspace.store
    added, failures, chunk = 0, [], []
    entries = manifest_entries(path)
    if check:
        entries = read_ahead(
            entries,
            lambda e: [store.path(e["candidate"]["image_key"])] if e.get("kind") == "candidate" else [],
        )
    for entry in entries:
        if entry["kind"] == "failure":
            failures.append(entry)
        elif entry["kind"] == "candidate":
            candidate = Candidate.model_validate(entry["candidate"])
            if store.intact(candidate.image_key) if check else store.exists(candidate.image_key):
                chunk.append(candidate)
            if len(chunk) >= MERGE_CHUNK:
                added += workspace.catalog.add_candidates(chunk, run_id)
                chunk = []
    added += workspace.catalog.add_candidates(chunk, run_id)
    record_failures(workspace, run_id, failures)
    return added, failures


def merge_manifests(workspace: Workspace, paths: list[Path]) -> tuple[int, list[dict[str, str]]]:
    """Merge a finished (or failed) run's manifests and mark each merged, so no later run merges it again.
    Returns (rows added, failures of every manifest)."""
    added, failures = 0, []
    for path in paths:
        rows, failed = merge_manifest(workspace, path)
        added += rows
        failures += failed
        _merged_marker(path).touch()
    return added, failures


def _writer_alive(path: Path) -> bool:
    """True while the process writing ``path`` holds its lock (the OS frees it when the process dies)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def recover_interrupted(workspace: Workspace) -> tuple[int, int]:
    """Merge the manifests of dead runs and delete their orphan files. Returns (rows recovered, files removed).

    The dead runs' files are flushed first (a killed run's may still be in the page cache only), then
    each is checked against its key before its row goes in; a torn one is an orphan like the rest.
    """
    leftovers = [
        path
        for path in sorted(workspace.runs_dir.glob("*/rank-*.jsonl"))
        if not _merged_marker(path).exists() and not _writer_alive(path)
    ]
    if leftovers:
        workspace.store.sync()
    recovered, pending = 0, set()
    for path in leftovers:
        recovered += merge_manifest(workspace, path, check=True)[0]
        pending |= {entry["key"] for entry in manifest_entries(path) if entry["kind"] == "pending"}
    referenced = workspace.catalog.referenced_among(pending)  # nothing read when no run died
    removed = 0
    for key in sorted(pending - referenced):
        if workspace.store.exists(key):
            workspace.store.path(key).unlink()
            removed += 1
    for path in leftovers:
        run_id = path.parent.name
        end_run(workspace, run_id, "interrupted", only_if_running=True)
        _merged_marker(path).touch()
    return recovered, removed


def remove_orphan_files(workspace: Workspace) -> int:
    """Delete every store file no catalog row references, and temp files. Returns how many.

    Only safe while no other medgen command (in any process) writes to the workspace: a file
    written a moment before its row would be taken for an orphan. Refuses to run under several ranks.
    """
    if ranks().world_size > 1:
        raise MedgenError(
            "removing orphan files is a single-process operation: run it without torchrun/accelerate"
        )
    referenced = workspace.catalog.referenced_keys()
    removed = workspace.store.clean_temp()
    for key in list(workspace.store.keys()):
        if key not in referenced:
            workspace.store.path(key).unlink(missing_ok=True)
            removed += 1
    return removed


class ManifestWriter:
    """Append-only JSON lines, locked for the writer's lifetime, flushed per line and fsynced per batch."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handle: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (held for the whole run)
        fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.lock = threading.Lock()

    def write(self, **entry: Any) -> None:
        line = json.dumps(entry) + "\n"
        with self.lock:  # the store thread writes candidates, the main thread failures
            self.handle.write(line)
            self.handle.flush()

    def sync(self) -> None:
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.sync()
        self.handle.close()  # closing releases the lock
