"""How an export version is laid out on disk: what ``medgen.export.load`` (and so training) needs to read it."""

from __future__ import annotations

SPLITS: tuple[str, ...] = ("train", "validation", "test")
VERSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""A version name: also a folder name and a git tag."""
MANIFEST = "manifest.json"
DATA_DIR = "data"
