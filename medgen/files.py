"""Atomic file writes, shared by every stage.

A file is written to a temporary name in its final folder, flushed to disk, then renamed: a
crash leaves either the whole file or nothing (plus a ``.tmp-*`` file).

A writer of many files whose records it makes durable later (generation's candidates) can leave
out the flush (``durable=False``) and flush them all at once with ``sync_filesystem`` before it
records them: a killed process then still leaves whole files (the kernel has their bytes), while
a power cut may leave a renamed file empty or torn, so whoever recovers such files checks them.
"""

from __future__ import annotations

import functools
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
def atomic_writer(path: Path, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends without an exception.

    For files written in pieces (reports of every file in a batch): nothing is held in memory, and
    a crash or an exception leaves the old file (or none), never half of the new one.
    ``durable=False`` leaves out the ``fsync``: a killed process still leaves the whole file, a power
    cut may not (the caller flushes later with ``sync_filesystem`` and checks what it recovers).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one."""
    with atomic_writer(path, durable) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs``, looked up on first use (not at import: every command imports this module)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs  # the process's own symbols: libc's
    except (OSError, AttributeError):
        return None
    syncfs.argtypes, syncfs.restype = [ctypes.c_int], ctypes.c_int

    def call(fd: int) -> int:
        return 0 if syncfs(fd) == 0 else ctypes.get_errno()

    return call


def sync_filesystem(path: Path) -> None:
    """Make every file written on ``path``'s filesystem so far durable, names included.

    One ``syncfs`` (Linux): it writes what the kernel has not written back yet and waits for it, with
    one journal commit. Generation calls it once per run, for files written with ``durable=False``:
    most were written back while the run went on. Elsewhere, ``sync()`` (every filesystem).
    """
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        error = syncfs(fd)  # 0, or the errno
    finally:
        os.close(fd)
    if error:
        raise OSError(error, f"syncfs: {os.strerror(error)}", str(path))


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
    cold disk each read waits its turn, while the disk serves several at once as fast. Up
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
