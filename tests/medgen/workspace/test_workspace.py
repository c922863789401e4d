import json
import sqlite3

import pytest
from PIL import Image

from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.workspace import init_workspace, open_workspace
from medgen.workspace.catalog import SCHEMA_VERSION, Catalog
from medgen.workspace.store import ImageStore


def test_init_creates_layout_and_reopens(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    for sub in ("served/images", "reports", "runs", "exports"):
        assert (ws.root / sub).is_dir()
    assert not (ws.root / "images").exists()
    assert ws.store.root == ws.served_dir  # the only folder a server may serve holds the store only
    assert ws.catalog.version == SCHEMA_VERSION
    ws.close()
    again = init_workspace(tmp_path / "ws")  # idempotent
    assert again.root == ws.root
    again.close()
    with open_workspace(tmp_path / "ws") as reopened:
        assert reopened.counts()["sources"] == 0


def test_a_format_1_workspace_moves_its_store_under_served_with_the_same_keys(tmp_path):
    ws = init_workspace(tmp_path / "ws")
    key = ws.store.put_image(Image.new("RGB", (8, 8), "red"))
    ws.close()
    root = tmp_path / "ws"
    (root / "served" / "images").rename(root / "images")  # as format 1 kept it
    (root / "served").rmdir()
    marker = json.loads((root / "workspace.json").read_text())
    atomic_write_text(root / "workspace.json", json.dumps({**marker, "format": 1}))
    with open_workspace(root) as moved:
        assert not (root / "images").exists()
        assert moved.store.exists(key) and moved.store.intact(key)
        assert moved.store.path(key) == root / "served" / key
    assert json.loads((root / "workspace.json").read_text())["format"] == 2
    with open_workspace(root) as again:  # nothing left to move
        assert again.store.exists(key)
    (root / "images").mkdir()  # both folders: refused, nothing guessed
    with pytest.raises(MedgenError, match="both images/ and served/images/"):
        open_workspace(root)


def test_open_refuses_non_workspace(tmp_path):
    with pytest.raises(MedgenError, match="not a medgen workspace"):
        open_workspace(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(MedgenError, match="not empty"):
        init_workspace(tmp_path)


def test_catalog_refuses_newer_schema(tmp_path):
    path = tmp_path / "c.sqlite"
    Catalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    with pytest.raises(MedgenError, match="newer than this medgen"):
        Catalog(path)


def test_transaction_rolls_back(workspace):
    with pytest.raises(RuntimeError), workspace.catalog.transaction() as conn:
        conn.execute("INSERT INTO exports VALUES ('v1', 'p', 'now', 1, '{}')")
        raise RuntimeError("boom")
    assert workspace.catalog.count("exports") == 0


def test_store_is_content_addressed_and_atomic(tmp_path):
    store = ImageStore(tmp_path)
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    key = store.put_image(image)
    assert key.startswith("images/") and key.endswith(".png")
    assert store.put_image(image.copy()) == key
    assert list(store.keys()) == [key]
    assert store.open(key).getpixel((0, 0)) == (1, 2, 3)
    (store.path(key).parent / ".tmp-leftover").write_bytes(b"x")
    assert store.clean_temp() == 1
    atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello"
    assert not list((tmp_path / "a").glob(".tmp-*"))


@pytest.mark.parametrize("left", [b"", b"\x89PNG torn"])
def test_a_torn_file_under_a_key_is_written_again_not_trusted(tmp_path, left):
    """What a power cut can leave of a file written with durable=False: its name, not its bytes."""
    store = ImageStore(tmp_path)
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    key = store.put_image(image)
    data = store.path(key).read_bytes()
    assert store.intact(key)
    store.path(key).write_bytes(left)
    assert not store.intact(key) and store.exists(key)
    assert store.put_bytes(data, durable=False) == key
    assert store.intact(key) and store.path(key).read_bytes() == data
    store.sync()
    assert not store.intact("images/00/" + "0" * 64 + ".png")  # absent


@pytest.mark.parametrize(("mode", "shape"), [("RGB", (37, 53, 3)), ("RGBA", (20, 30, 4)), ("L", (19, 23))])
def test_png_encoding_is_lossless_deterministic_and_keeps_the_mode(mode, shape):
    import io

    import numpy as np
    from PIL import Image

    from medgen.workspace.store import png_bytes, png_bytes_many

    pixels = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    image = Image.fromarray(pixels, mode)
    data = png_bytes(image)
    back = Image.open(io.BytesIO(data))
    assert back.format == "PNG" and back.mode == mode and (np.asarray(back) == pixels).all()
    assert png_bytes(image.copy()) == data  # same pixels, same bytes: the content hash holds
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        assert png_bytes_many([image] * 6, pool) == [data] * 6
    palette = image.convert("L").convert("P")  # other modes go through Pillow, still lossless
    reread = Image.open(io.BytesIO(png_bytes(palette))).convert("RGB")
    assert (np.asarray(reread) == np.asarray(palette.convert("RGB"))).all()


SCANS = {  # what `medgen status` counted before the counts table, by scanning
    "sources": "SELECT COUNT(*) FROM sources",
    "candidates": "SELECT COUNT(*) FROM candidates",
    "sources_complete": "SELECT COUNT(*) FROM (SELECT source_id FROM candidates GROUP BY source_id HAVING COUNT(*) >= 4)",
    "generation_failures": "SELECT COUNT(*) FROM generation_failures",
    "ls_projects": "SELECT COUNT(*) FROM ls_projects",
    "tasks": "SELECT COUNT(*) FROM tasks",
    "annotations": "SELECT COUNT(*) FROM annotations",
    "annotations_valid": "SELECT COUNT(*) FROM annotations WHERE status = 'valid'",
    "annotations_rejected": "SELECT COUNT(*) FROM annotations WHERE status != 'valid'",
    "exports": "SELECT COUNT(*) FROM exports",
}


def _scanned(workspace) -> dict[str, int]:
    return {name: workspace.catalog.conn.execute(sql).fetchone()[0] for name, sql in SCANS.items()}


def _annotate(conn, annotation_id: int, source_id: str, status: str, replace: bool = False) -> None:
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    conn.execute(
        f"{verb} INTO annotations (ls_annotation_id, ls_task_id, ls_project_id, annotator, source_id, status, "
        "pulled_at) VALUES (?, 1, 1, 'ann1', ?, ?, 'now')",
        (annotation_id, source_id, status),
    )


def test_status_counts_follow_every_change_without_scanning(workspace):
    """Inserts, REPLACE (a delete and an insert), status updates, deletes: the kept counts equal the scans."""
    from tests.annotation.conftest import add_sources

    ids = add_sources(workspace, 3)
    with workspace.catalog.transaction() as conn:
        conn.execute("DELETE FROM candidates WHERE source_id = ? AND slot = 3", (ids[0],))
        conn.execute("DELETE FROM candidates WHERE source_id = ? AND slot < 2", (ids[1],))
        conn.execute("INSERT INTO generation_failures VALUES ('r', ?, 'boom', 'now')", (ids[0],))
        conn.execute(
            "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at) VALUES (1, 'queue', 'ann1', 'Queue', 'now')"
        )
        conn.execute(
            "INSERT INTO tasks (ls_task_id, ls_project_id, source_id, annotator, is_gold, pushed_at) VALUES (1, 1, ?, 'ann1', 0, 'now')",
            (ids[2],),
        )
        _annotate(conn, 1, ids[2], "valid")
        _annotate(conn, 2, ids[2], "rejected")
        _annotate(conn, 1, ids[2], "rejected", replace=True)  # pulled again, now invalid
        _annotate(conn, 3, ids[2], "valid")
        conn.execute("UPDATE annotations SET status = 'valid' WHERE ls_annotation_id = 2")
        conn.execute("DELETE FROM annotations WHERE ls_annotation_id = 3")
        conn.execute("INSERT INTO exports VALUES ('v1', '/x', 'now', 1, '{}')")
    counts = workspace.counts()
    assert counts == _scanned(workspace)
    assert counts["sources_complete"] == 1 and counts["candidates"] == 9 and counts["annotations_valid"] == 1
    catalog_path = workspace.catalog.path
    workspace.catalog.close()
    workspace.catalog = Catalog(catalog_path)  # the counts live in the file, not the connection
    assert workspace.counts() == counts


def _add_candidates_before_regions(catalog, candidates, run_id=None):
    """``add_candidates`` as it was before migration 11 (eight columns, no injected regions)."""
    with catalog.transaction() as conn:
        for c in candidates:
            conn.execute(
                "INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.id,
                    c.source_id,
                    c.slot,
                    c.image_key,
                    c.provenance.model_dump_json(),
                    None,
                    run_id,
                    "2026-01-01",
                ),
            )
    return len(candidates)


def test_the_counts_migration_counts_an_existing_catalog(tmp_path, monkeypatch):
    from medgen.workspace import catalog as catalog_module
    from tests.annotation.conftest import add_sources

    with monkeypatch.context() as patch:  # a catalog made by the medgen before the counts table
        patch.setattr(catalog_module, "MIGRATIONS", catalog_module.MIGRATIONS[:5])
        patch.setattr(catalog_module, "SCHEMA_VERSION", 5)
        patch.setattr(catalog_module.Catalog, "add_candidates", _add_candidates_before_regions)
        with init_workspace(tmp_path / "ws") as old:
            add_sources(old, 5)
            with old.catalog.transaction() as conn:
                conn.execute("DELETE FROM candidates WHERE slot = 0 AND rowid % 2 = 0")
                _annotate(conn, 1, "x", "valid")
                _annotate(conn, 2, "x", "rejected")
            assert old.catalog.version == 5
    with open_workspace(tmp_path / "ws") as ws:
        assert ws.catalog.version == SCHEMA_VERSION
        assert ws.counts() == _scanned(ws) and ws.counts()["sources"] == 5
