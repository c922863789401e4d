"""Content-addressed image store.

Files are written with ``medgen.files.atomic_write_bytes``: a crash leaves either the whole file or
nothing (plus a ``.tmp-*`` file that ``clean_temp`` removes).
Keys are workspace-relative paths ``images/<2 hex>/<sha256>.<ext>``, so Label Studio's
local-files serving and exports can use them as they are.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from medgen.files import atomic_write_bytes


def png_bytes(image: Image.Image) -> bytes:
    """Encode without metadata (no EXIF, no text chunks), so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    clean.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class ImageStore:
    """Files named by the sha256 of their bytes under ``root/images``."""

    def __init__(self, root: Path):
        self.root = root

    @staticmethod
    def key_of(data: bytes, ext: str = "png") -> str:
        """The key ``put_bytes(data, ext)`` stores ``data`` under, without writing it."""
        digest = hashlib.sha256(data).hexdigest()
        return f"images/{digest[:2]}/{digest}.{ext}"

    def put_bytes(self, data: bytes, ext: str = "png") -> str:
        key = self.key_of(data, ext)
        path = self.root / key
        if not path.exists():
            atomic_write_bytes(path, data)
        return key

    def put_image(self, image: Image.Image) -> str:
        return self.put_bytes(png_bytes(image))

    def path(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str) -> Image.Image:
        image = Image.open(self.path(key))
        image.load()
        return image

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def keys(self) -> Iterator[str]:
        base = self.root / "images"
        if base.is_dir():
            for path in sorted(base.glob("*/*")):
                if not path.name.startswith(".tmp-"):
                    yield path.relative_to(self.root).as_posix()

    def clean_temp(self) -> int:
        """Remove leftovers of interrupted writes; returns how many."""
        count = 0
        for path in (self.root / "images").glob("*/.tmp-*"):
            path.unlink(missing_ok=True)
            count += 1
        return count
