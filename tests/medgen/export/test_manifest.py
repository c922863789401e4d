"""The manifest and changelog written from on-disk hashes: the same bytes and the same changes as in memory."""

from __future__ import annotations

import json
from pathlib import Path

from medgen.export.manifest import SampleHashes, write_changelog, write_manifest

FIELDS = {"version": "v2", "num_samples": 4, "counts": {"train": {"overall": 3}}, "changes": {"added": 1}}


def _hashes(tmp_path: Path, items: dict[str, tuple[str, str]]) -> SampleHashes:
    hashes = SampleHashes(tmp_path / "hashes.sqlite")
    for sample_id, (split, digest) in items.items():
        hashes.add(split, sample_id, digest)
    return hashes


def test_manifest_is_what_json_dumps_writes(tmp_path: Path) -> None:
    items = {"b2": ("train", "d1"), "a1": ("train", "d2"), 'é"3': ("test", "d3"), "c": ("validation", "d4")}
    hashes = _hashes(tmp_path, items)
    write_manifest(tmp_path / "manifest.json", FIELDS, hashes)
    splits: dict[str, dict[str, str]] = {}
    for sample_id, (split, digest) in items.items():
        splits.setdefault(split, {})[sample_id] = digest
    expected = json.dumps({**FIELDS, "splits": splits}, indent=1, sort_keys=True) + "\n"
    assert (tmp_path / "manifest.json").read_text(encoding="utf-8") == expected
    hashes.close()
    assert not (tmp_path / "hashes.sqlite").exists()


def test_manifest_of_many_samples_crosses_insert_batches(tmp_path: Path) -> None:
    hashes = _hashes(tmp_path, {f"s{i:05d}": ("train" if i % 3 else "test", f"{i:x}") for i in range(4500)})
    write_manifest(tmp_path / "manifest.json", {}, hashes)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["splits"]["train"]) == 3000 and len(manifest["splits"]["test"]) == 1500
    assert manifest["splits"]["train"]["s04499"] == f"{4499:x}"


def test_changelog_lists_added_removed_changed_and_moved(tmp_path: Path) -> None:
    previous = {"splits": {"train": {"kept": "h1", "changed": "h2", "gone": "h3"}, "test": {"moved": "h4"}}}
    (tmp_path / "old.json").write_text(json.dumps(previous))
    hashes = _hashes(
        tmp_path,
        {
            "kept": ("train", "h1"),
            "changed": ("train", "new"),
            "moved": ("train", "h4"),
            "new": ("test", "h5"),
        },
    )
    hashes.load_previous(tmp_path / "old.json")
    changes = write_changelog(tmp_path / "changelog.md", "v2", hashes, "v1")
    assert changes == {"added": 1, "removed": 1, "changed": 1, "moved": 1}
    assert (tmp_path / "changelog.md").read_text() == (
        "# Changelog of v2\n\nCompared with v1: 4 → 4 samples.\n\n"
        "- added: 1\n- removed: 1\n- changed: 1\n- moved: 1\n"
        "\n## Added\n\n- `new` (test)\n"
        "\n## Removed\n\n- `gone` (train)\n"
        "\n## Changed\n\n- `changed` (train)\n"
        "\n## Moved between splits\n\n- `moved` (train)\n"
    )
    (tmp_path / "sub").mkdir()
    first = write_changelog(
        tmp_path / "first.md", "v1", _hashes(tmp_path / "sub", {"a": ("train", "h")}), None
    )
    assert first == {"added": 1, "removed": 0, "changed": 0, "moved": 0}
    assert (tmp_path / "first.md").read_text() == "# Changelog of v1\n\nFirst version: 1 samples.\n"


def test_previous_manifest_is_read_back_whole_whatever_its_ids_and_layout(tmp_path: Path) -> None:
    # Streamed, not json.loads: ids with dots, quotes and non-ASCII, a "splits" key elsewhere, other
    # fields after the splits, more rows than one insert batch, compact and indented JSON.
    splits = {
        "train": {f"s.{i:05d}": f"{i:x}" for i in range(4100)} | {'é"q.x': "d1"},
        "test": {"a.b.c": "d2"},
        "validation": {},
    }
    manifest = {"config": {"splits": {"train": 0.8}}, "splits": splits, "zz": {"train": {"x": "y"}}}
    expected = {(i, split, digest) for split, items in splits.items() for i, digest in items.items()}
    for name, text in (
        ("compact.json", json.dumps(manifest)),
        ("indented.json", json.dumps(manifest, indent=1)),
    ):
        (tmp_path / name).write_text(text, encoding="utf-8")
        hashes = SampleHashes(tmp_path / f"{name}.sqlite")
        hashes.load_previous(tmp_path / name)
        assert set(hashes.conn.execute("SELECT id, split, digest FROM previous")) == expected
        hashes.close()
