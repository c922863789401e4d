"""Content-addressed image store.

Files are written with ``medgen.files.atomic_write_bytes``: a crash leaves either the whole file or
nothing (plus a ``.tmp-*`` file that ``clean_temp`` removes). Files written with ``durable=False``
(generation's candidates, made durable together by ``sync``) may be left empty or torn by a power
cut: ``intact`` tells, and ``put_bytes`` replaces such a file rather than trusting its name.
Keys are paths relative to the store's root (a workspace's ``served/`` folder),
``images/<2 hex>/<sha256>.<ext>``, so Label Studio's local-files serving, whose document root is that
folder, uses them as they are.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

from PIL import Image

from medgen.files import atomic_write_bytes, sync_filesystem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPE = {"L": 0, "RGB": 2, "RGBA": 6}  # PNG colour types of 8-bit grey, truecolour, truecolour+alpha


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG without metadata (no EXIF, no text chunks): equal pixels give equal bytes.

    8-bit grey, RGB and RGBA (every image medgen stores) are written as the PNG specification lays
    out: each row "Sub"-filtered (numpy), the image data compressed by libdeflate at level 1
    (``imagecodecs``), in IHDR/IDAT/IEND chunks: faster and smaller than Pillow's ``compress_level=1``
    (benchmarks/README.md, "Synthetic backend throughput"), and libdeflate releases the GIL, so threads
    encode in parallel. Other modes go through Pillow.
    """
    if image.mode not in COLOR_TYPE:
        buffer = io.BytesIO()
        clean = Image.frombytes(image.mode, image.size, image.tobytes())
        if image.mode == "P":
            clean.putpalette(image.getpalette() or [])  # the pixels are indices: keep what they mean
        clean.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
    import imagecodecs
    import numpy as np

    width, height = image.size
    channels = len(image.getbands())
    rows = np.asarray(image).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type Sub: each byte minus the byte one pixel to its left, modulo 256
    filtered[:, 1 : 1 + channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels :])
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPE[image.mode], 0, 0, 0)
    data = imagecodecs.deflate_encode(filtered, level=1)  # a zlib stream, as IDAT wants
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes_many(images: list[Image.Image], pool: Executor | None = None) -> list[bytes]:
    """``png_bytes`` of each image, on ``pool``'s threads when given (the encoder releases the GIL)."""
    if pool is None or len(images) < 2:
        return [png_bytes(image) for image in images]
    return list(pool.map(png_bytes, images))


class ImageStore:
    """Files named by the sha256 of their bytes under ``root/images``."""

    def __init__(self, root: Path):
        self.root = root

    @staticmethod
    def key_of(data: bytes, ext: str = "png") -> str:
        """The key ``put_bytes(data, ext)`` stores ``data`` under, without writing it."""
        digest = hashlib.sha256(data).hexdigest()
        return f"images/{digest[:2]}/{digest}.{ext}"

    def put_bytes(self, data: bytes, ext: str = "png", durable: bool = True) -> str:
        """Store ``data`` under its key; ``durable=False``: not flushed to disk until ``sync``.

        A file already under the key is kept only if it holds ``data`` (compared on the rare path
        where the key exists): a torn file left by a power cut is written again, not reused.
        """
        key = self.key_of(data, ext)
        path = self.root / key
        if not self._holds(path, data):
            atomic_write_bytes(path, data, durable)
        return key

    @staticmethod
    def _holds(path: Path, data: bytes) -> bool:
        try:
            return path.stat().st_size == len(data) and path.read_bytes() == data
        except FileNotFoundError:
            return False

    def intact(self, key: str) -> bool:
        """True if the file under ``key`` exists and its bytes hash to the key."""
        try:
            data = self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return False
        return self.key_of(data, key.rsplit(".", 1)[-1]) == key

    def sync(self) -> None:
        """Make every file written to the store so far durable (one ``syncfs``)."""
        sync_filesystem(self.root)

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
