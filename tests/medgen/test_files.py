"""medgen.files.read_ahead: items in order, the coming items' files asked of the disk before they are reached."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

import medgen.files
from medgen.files import atomic_write_bytes, read_ahead, sync_filesystem


def record_hints(monkeypatch) -> tuple[list[Path], threading.Lock]:
    """Every path ``read_ahead`` asks of the disk from now on (instead of asking it), and the list's lock."""
    hinted: list[Path] = []
    lock = threading.Lock()

    def record(paths):
        with lock:
            hinted.extend(paths)

    monkeypatch.setattr(medgen.files, "_ask_disk", record)
    return hinted, lock


def test_read_ahead_yields_every_item_in_order_and_hints_the_next_ones(tmp_path: Path, monkeypatch):
    files = []
    for i in range(40):
        files.append(tmp_path / f"{i}.bin")
        files[-1].write_bytes(bytes([i]) * 100)
    hinted, lock = record_hints(monkeypatch)
    seen = []
    for index in read_ahead(range(40), lambda i: [files[i]], depth=5, threads=1):
        seen.append(index)
        if index < 35:
            # Every item up to index + 5 was submitted before this one came out.
            assert files[index + 5] in _wait_for(hinted, lock, files[index + 5])
    assert seen == list(range(40))


def _wait_for(hinted, lock, path, timeout=5.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        with lock:
            if path in hinted:
                return list(hinted)
        event.wait(0.01)
    return list(hinted)


def test_read_ahead_skips_missing_files_and_leaves_the_error_to_the_reader(tmp_path: Path):
    present = tmp_path / "present.png"
    present.write_bytes(b"x" * 1000)
    missing = tmp_path / "missing.png"
    out = list(read_ahead([present, missing], lambda p: [p], depth=4))
    assert out == [present, missing]
    with pytest.raises(FileNotFoundError):
        missing.read_bytes()


def test_read_ahead_stops_its_threads_when_the_loop_breaks(tmp_path: Path):
    path = tmp_path / "a"
    path.write_bytes(b"a")
    before = {t.name for t in threading.enumerate()}
    items = read_ahead(range(1000), lambda i: [path], depth=8, threads=4)
    for index in items:
        if index == 3:
            break
    items.close()
    left = {t.name for t in threading.enumerate()} - before
    assert not [name for name in left if name.startswith("medgen-readahead")]


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="posix_fadvise is Linux's")
def test_ask_disk_opens_and_advises_without_reading(tmp_path: Path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"y" * 4096)
    advised = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, o, n, a: advised.append(a) or real(fd, o, n, a))
    medgen.files._ask_disk([path, tmp_path / "gone"])
    assert advised == [os.POSIX_FADV_WILLNEED]


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_flushes_each_file_unless_told_not_to(tmp_path: Path, monkeypatch, durable):
    flushed: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(medgen.files.os, "fsync", lambda fd: (flushed.append(fd), fsync(fd)))
    atomic_write_bytes(tmp_path / "a" / "b.png", b"bytes", durable=durable)
    assert (tmp_path / "a" / "b.png").read_bytes() == b"bytes"
    assert not list((tmp_path / "a").glob(".tmp-*"))
    assert len(flushed) == (1 if durable else 0)
    if sys.platform.startswith("linux"):
        assert medgen.files._syncfs() is not None  # one syncfs, not a sync of every filesystem
    sync_filesystem(tmp_path)  # the undurable one's flush: one call for the filesystem, no error
    with pytest.raises(FileNotFoundError):
        sync_filesystem(tmp_path / "absent")
