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
    for sub in ("images", "reports", "runs", "exports"):
        assert (ws.root / sub).is_dir()
    assert ws.catalog.version == SCHEMA_VERSION
    ws.close()
    again = init_workspace(tmp_path / "ws")  # idempotent
    assert again.root == ws.root
    again.close()
    with open_workspace(tmp_path / "ws") as reopened:
        assert reopened.counts()["sources"] == 0


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
