"""Atomic file writes, shared by every stage.

A file is written to a temporary name in its final folder, flushed to disk, then renamed: a
crash leaves either the whole file or nothing (plus a ``.tmp-*`` file).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

T = TypeVar("T")


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends without an exception.

    For files written in pieces (reports of every file in a batch): nothing is held in memory, and
    a crash or an exception leaves the old file (or none), never half of the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_many(files: Sequence[tuple[Path, bytes]]) -> None:
    """``atomic_write_bytes`` for each ``(path, data)``, made durable together rather than one by one.

    Every file is written to its temporary name, then one flush makes them all durable (``syncfs`` on
    Linux: one journal commit and one disk-cache flush for the lot, where a ``fsync`` per file pays
    for one each), then each is renamed: a crash leaves each file whole or absent, as one at a time.
    Elsewhere each file is fsync'd. For a batch of new files in one store (generation's candidates).
    """
    tmps: list[Path] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmps.append(path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}"))
            with open(tmps[-1], "wb") as handle:
                handle.write(data)
        _make_durable(tmps)
        for tmp, (path, _) in zip(tmps, files, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        syncfs = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes, syncfs.restype = [ctypes.c_int], ctypes.c_int
    return syncfs


_syncfs = _load_syncfs()


def _make_durable(paths: Sequence[Path]) -> None:
    """Flush these written files to disk: one ``syncfs`` per filesystem they are on, or one fsync each."""
    if _syncfs is None:
        for path in paths:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        return
    filesystems = {os.stat(path).st_dev: path for path in paths}
    for path in filesystems.values():
        fd = os.open(path, os.O_RDONLY)
        try:
            if _syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"syncfs: {os.strerror(error)}", str(path))
        finally:
            os.close(fd)


def _ask_disk(paths: Sequence[Path]) -> None:
    """Start reading these files into the page cache; errors are the reader's to report, not this hint's."""
    for path in paths:
        try:
            if hasattr(os, "posix_fadvise"):
                fd = os.open(path, os.O_RDONLY)
                try:  # the kernel queues the reads and returns: no bytes are copied or held here
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)
            else:
                path.read_bytes()
        except OSError:
            pass


def read_ahead(
    items: Iterable[T], paths: Callable[[T], Sequence[Path]], depth: int = 64, threads: int = 8
) -> Iterator[T]:
    """``items`` in order; while the caller works on one, the files of the next ``depth`` are being read.

    For loops that read many small files one after the other (an export reads five per source): on a
    cold disk each read waits its turn, ~6 ms here, while the disk serves several at once as fast. Up
    to ``threads`` threads open the coming files and ask the kernel to read them
    (``posix_fadvise(WILLNEED)``), so they are in the page cache when the loop gets there. Nothing is
    held in memory but the hints; a hint not started by the time its item is reached is dropped.
    """
    pending: deque[tuple[T, Future[None]]] = deque()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="medgen-readahead")
    try:
        for item in items:
            pending.append((item, pool.submit(_ask_disk, paths(item))))
            if len(pending) > depth:
                first, hint = pending.popleft()
                hint.cancel()
                yield first
        while pending:
            first, hint = pending.popleft()
            hint.cancel()
            yield first
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
