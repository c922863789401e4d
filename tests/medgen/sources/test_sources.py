import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medgen.sources.ingest import add_sources, load_and_normalise, product_mask
from medgen.workspace import init_workspace
from tests.conftest import product_photo


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """Good photos in every awkward mode, duplicates, and broken files."""
    d = tmp_path / "mixed"
    (d / "nested").mkdir(parents=True)
    product_photo(1).save(d / "good_rgb.png")
    product_photo(2).save(d / "nested" / "good_jpeg.jpg", quality=95)
    product_photo(3).convert("P", palette=Image.ADAPTIVE).save(d / "palette.png")
    product_photo(4).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    product_photo(5).convert("L").save(d / "grey.png")
    Image.fromarray(np.asarray(product_photo(6).convert("L"), dtype=np.uint16) * 257).save(
        d / "sixteen_bit.png"
    )
    rgba = np.array(product_photo(7).convert("RGBA"))
    rgba[..., 3] = 0
    rgba[60:200, 80:180, 3] = 255
    Image.fromarray(rgba).save(d / "cutout_rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    product_photo(8, (200, 300)).save(d / "rotated.jpg", exif=exif, quality=95)
    # duplicates: same pixels in another format, and a re-encoded near copy
    product_photo(1).save(d / "same_pixels.bmp")
    product_photo(2).save(d / "recompressed.jpg", quality=70)
    # broken
    (d / "empty.png").write_bytes(b"")
    (d / "notes.jpg").write_text("not an image")
    data = (d / "good_rgb.png").read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    product_photo(9, (48, 48)).save(d / "tiny.png")
    Image.new("L", (8000, 8000)).save(d / "bomb.png")
    return d


def _names(pairs):
    return sorted(Path(p[0]).name for p in pairs)


def test_mixed_folder_gives_exact_split_and_rerun_changes_nothing(workspace, mixed_dir):
    report = add_sources(workspace, [mixed_dir])
    assert _names(report.added) == [
        "cmyk.jpg",
        "cutout_rgba.png",
        "good_jpeg.jpg",
        "good_rgb.png",
        "grey.png",
        "palette.png",
        "rotated.jpg",
        "sixteen_bit.png",
    ]
    assert _names(report.duplicates) == ["recompressed.jpg", "same_pixels.bmp"]
    reasons = {Path(f).name: r for f, r in report.rejected}
    assert set(reasons) == {"empty.png", "notes.jpg", "truncated.png", "tiny.png", "bomb.png"}
    assert reasons["empty.png"] == "empty file"
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.png"]
    assert "too small: 48x48" in reasons["tiny.png"]
    assert "decompression bomb" in reasons["bomb.png"] or "exceeds" in reasons["bomb.png"]
    saved = json.loads(report.report_path.read_text())
    assert saved["summary"] == {"added": 8, "duplicate": 2, "rejected": 5}
    assert {r["file"] for r in saved["rejected"]} == {f for f, _ in report.rejected}
    dup = {Path(f).name: how for f, _, how in report.duplicates}
    assert dup["same_pixels.bmp"] == "identical pixels"
    assert dup["recompressed.jpg"].startswith("perceptual hash")

    files_before = sorted(workspace.store.keys())
    again = add_sources(workspace, [mixed_dir])
    assert again.summary() == {"added": 0, "duplicate": 10, "rejected": 5}
    assert workspace.catalog.count("sources") == 8
    assert sorted(workspace.store.keys()) == files_before


def test_normalisation(workspace, mixed_dir):
    add_sources(workspace, [mixed_dir])
    by_name = {s.original_name: s for s in workspace.catalog.sources()}
    for source in by_name.values():
        image = workspace.store.open(source.image_key)
        assert image.mode == "RGB" and image.info.get("exif") is None
        mask = workspace.store.open(source.mask_key)
        assert mask.mode == "L" and mask.size == image.size
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert (by_name["rotated.jpg"].width, by_name["rotated.jpg"].height) == (300, 200)
    cutout = by_name["cutout_rgba.png"]
    assert cutout.mask_from_alpha
    mask = np.asarray(workspace.store.open(cutout.mask_key)) > 0
    assert mask[60:200, 80:180].all() and mask.sum() == 140 * 100
    sixteen = np.asarray(workspace.store.open(by_name["sixteen_bit.png"].image_key))
    assert sixteen.max() > 150  # scaled to 8 bits, not clipped to black/white
    assert not by_name["good_rgb.png"].mask_from_alpha


def test_opencv_mask_finds_the_product():
    photo = product_photo(3)
    mask = np.asarray(product_mask(photo)) > 0
    background = np.asarray(photo).astype(int)
    product = np.abs(background - 235).sum(axis=2) > 60  # the drawn box differs clearly from the backdrop
    overlap = (mask & product).sum() / (mask | product).sum()
    assert overlap > 0.85


def test_glob_and_missing_paths(workspace, photos_dir):
    report = add_sources(
        workspace, [str(photos_dir / "*.png"), str(photos_dir / "missing.png"), "nothing-*.jpg"]
    )
    assert len(report.added) == 3
    assert {r for _, r in report.rejected} == {"no such file or folder", "pattern matched no files"}


def test_load_rejects_non_image(tmp_path):
    from medgen.sources.ingest import RejectedFile

    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(RejectedFile):
        load_and_normalise(path)


@pytest.mark.slow
def test_kill_mid_run_leaves_consistent_catalog(workspace, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(24):
        product_photo(1000 + i, (480, 480)).save(folder / f"p{i:03d}.png")
    root = workspace.root
    workspace.close()
    cmd = [sys.executable, "-m", "medgen.cli", "sources", "add", str(folder), "-w", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    count = 0
    while time.time() < deadline and count < 3:
        time.sleep(0.05)
        with contextlib.suppress(sqlite3.OperationalError):
            count = (
                sqlite3.connect(root / "catalog.sqlite").execute("SELECT COUNT(*) FROM sources").fetchone()[0]
            )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(root / "catalog.sqlite")
    rows = conn.execute("SELECT image_key, mask_key FROM sources").fetchall()
    assert 3 <= len(rows) < 24, "the kill must land mid-run"
    for image_key, mask_key in rows:  # no row without its files
        assert (root / "served" / image_key).is_file() and (root / "served" / mask_key).is_file()
    conn.close()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "rejected 0" in done.stdout
    conn = sqlite3.connect(root / "catalog.sqlite")
    resumed = conn.execute("SELECT id FROM sources ORDER BY id").fetchall()
    with init_workspace(tmp_path / "uninterrupted") as clean:
        add_sources(clean, [folder])
        expected = clean.catalog.query("SELECT id FROM sources ORDER BY id")
    assert [r[0] for r in resumed] == [r["id"] for r in expected]


def test_phash_index_finds_what_imagehash_distance_finds() -> None:
    """The vectorised index answers as the pairwise ImageHash loop it replaces: first match, same distance."""
    import imagehash
    import numpy as np

    from medgen.sources.ingest import PhashIndex

    rng = np.random.default_rng(0)
    known = [imagehash.ImageHash(rng.random((8, 8)) < 0.5) for _ in range(3000)]  # grows past 1,024
    index = PhashIndex()
    for i, phash in enumerate(known):
        index.add(i, str(phash))
    queries = [imagehash.ImageHash(rng.random((8, 8)) < 0.5) for _ in range(50)]
    for phash in known[::97]:  # near copies: a few bits flipped
        bits = phash.hash.copy()
        bits.flat[rng.choice(64, size=int(rng.integers(0, 6)), replace=False)] ^= True
        queries.append(imagehash.ImageHash(bits))
    found = 0
    for query in queries:
        expected = next(((i, query - h) for i, h in enumerate(known) if query - h <= 4), None)
        assert index.near(query, 4) == expected
        found += expected is not None
    assert found >= 20  # the near copies within 4 bits were found


def test_many_files_keep_only_a_few_in_memory_and_all_in_the_report(
    workspace, photos_dir, runner, monkeypatch
):
    """Memory stays flat with the batch: the report object keeps SHOWN per kind, the JSON file every file."""
    from medgen.cli import app
    from medgen.sources import ingest

    monkeypatch.setattr(ingest, "SHOWN", 2)
    first = add_sources(workspace, [photos_dir])
    assert first.summary() == {"added": 6, "duplicate": 0, "rejected": 0} and len(first.added) == 2
    saved = json.loads(first.report_path.read_text())
    assert sorted(Path(e["file"]).name for e in saved["added"]) == sorted(
        p.name for p in photos_dir.iterdir()
    )
    assert {e["source_id"] for e in saved["added"]} == {s.id for s in workspace.catalog.sources()}
    assert saved["duplicates"] == [] and saved["rejected"] == []
    root = workspace.root
    workspace.close()

    result = runner.invoke(
        app, ["sources", "add", str(photos_dir), str(photos_dir / "nothing"), "-w", str(root)]
    )
    assert result.exit_code == 1, result.output  # one argument matched nothing
    lines = result.output.splitlines()
    assert (
        sum(line.startswith("duplicate ") for line in lines) == 2
        and "... and 4 more duplicates" in result.output
    )
    assert "rejected" in result.output and "more rejected" not in result.output
    (report,) = [p for p in (root / "reports").glob("sources-add-*.json") if p != first.report_path]
    again = json.loads(report.read_text())
    assert again["summary"] == {"added": 0, "duplicate": 6, "rejected": 1}
    assert len(again["duplicates"]) == 6 and all(e["how"] == "identical pixels" for e in again["duplicates"])


def test_folders_are_walked_lazily(tmp_path):
    """Files are yielded as folders are listed, not after listing them all (no list of every path)."""
    from medgen.sources.ingest import expand_paths

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        product_photo(1).save(tmp_path / name / "one.png")
    files = expand_paths([tmp_path], [])
    assert next(files).parent.name == "a"
    product_photo(2).save(tmp_path / "b" / "two.png")  # after the walk started, in a folder not listed yet
    assert [p.name for p in files] == ["one.png", "two.png"]


def test_the_walk_matches_sorted_rglob_and_takes_each_file_once(tmp_path):
    """Nested folders, mixed-case suffixes, other files, a symlinked folder (not followed), a symlinked file."""
    from medgen.sources.ingest import IMAGE_SUFFIXES, expand_paths

    root = tmp_path / "photos"
    for name in (
        "b/x.PNG",
        "a/c/y.jpg",
        "a/z.webp",
        "a.png",
        "B.jpeg",
        "notes.txt",
        "a/c/d.png.bak",
        "e/f.png",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "empty").mkdir()
    (root / "linked").symlink_to(root / "a", target_is_directory=True)
    (root / "b" / "alias.png").symlink_to(root / "a.png")
    reference: list[Path] = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path.resolve() not in reference:
            reference.append(path.resolve())
    found = list(expand_paths([root, root / "a.png", str(root / "e" / "*.png")], []))
    assert found == reference and len(found) == 6


def test_the_seen_set_holds_many_values_across_merges():
    from medgen.sources.ingest import _Int64Set

    seen = _Int64Set()
    values = [hash(f"/photos/p{i}.png") for i in range(3 * _Int64Set.MERGE + 7)]
    assert all(seen.add(value) for value in values)
    assert not any(seen.add(value) for value in values[::-1])
    assert seen.add(-(2**63)) and seen.add(2**63 - 1) and not seen.add(2**63 - 1)
