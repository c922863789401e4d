"""The dataset's Parquet form: metadata-free image bytes, features, rows, and a streaming sharded writer."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from schemas import BenchmarkSample, GenerationProvenance
from schemas.taxonomy import QUESTION_DIMENSIONS

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pixel and colour chunks only: tEXt/zTXt/iTXt (XMP), eXIf, tIME and private chunks are dropped.
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT"}


def _strip_png(data: bytes) -> bytes:
    view = memoryview(data)
    parts: list[bytes | memoryview] = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        if kind in _PNG_KEEP:
            parts.append(view[pos:end])
        pos = end
        if kind == b"IEND":
            break
    else:
        raise ValueError("PNG has no IEND chunk (truncated)")
    return b"".join(parts)


def clean_image_bytes(path: Path) -> bytes:
    """The image file's bytes without EXIF, GPS, XMP or text metadata.

    PNG is rewritten chunk by chunk (pixels untouched, byte-exact); JPEG is re-encoded with its own
    quantisation tables and no EXIF; other formats are re-encoded as PNG.
    """
    from PIL import Image

    data = path.read_bytes()
    if data.startswith(_PNG_SIGNATURE):
        clean = _strip_png(data)
        with Image.open(io.BytesIO(clean)) as image:
            image.verify()  # chunk CRCs and structure
        return clean
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        buffer = io.BytesIO()
        if image.format == "JPEG":
            image.save(buffer, format="JPEG", quality="keep")
        else:
            clean_image = Image.frombytes(image.mode, image.size, image.tobytes())
            clean_image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()


def _generation_features() -> dict[str, Any]:
    from datasets import Value

    types = {str: "string", int: "int64", float: "float64", bool: "bool"}
    return {
        name: Value(types[cast(type, f.annotation)]) for name, f in GenerationProvenance.model_fields.items()
    }


def region_features() -> dict[str, Any]:
    """One region in the ``regions`` column: its tag, box (x0, y0, x1, y1 in fractions of the image; a point
    when x0 == x1 and y0 == y1), how many annotators agreed of how many marked the tag, and who."""
    from datasets import List, Value

    return {
        "tag": Value("string"),
        "box": List(Value("float32"), length=4),
        "agreed": Value("int32"),
        "of": Value("int32"),
        "annotators": List(Value("string")),
    }


def dataset_features() -> datasets.Features:
    """The dataset's columns; images decode as PIL images, ``dimension`` is a ClassLabel."""
    from datasets import ClassLabel, Features, List, Value
    from datasets import Image as ImageFeature

    message = List(
        {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
    )
    return Features(
        {
            "id": Value("string"),
            "source_id": Value("string"),
            "dimension": ClassLabel(names=list(QUESTION_DIMENSIONS)),
            "images": List(ImageFeature()),
            "question": Value("string"),
            "options": List(Value("string")),
            "answer": Value("string"),
            "defects": List(List(Value("string"))),
            "acceptable": List(Value("bool")),
            "rationale": Value("string"),
            "num_annotators": Value("int32"),
            "agreement": Value("float64"),
            "votes": List({"annotator": Value("string"), "answer": Value("string")}),
            "generation": List(_generation_features()),
            "regions": List(List(region_features())),
            "dataset_version": Value("string"),
            "prompt": message,
            "completion": message,
        }
    )


def sample_row(sample: BenchmarkSample, images: Sequence[bytes]) -> dict[str, Any]:
    """One Arrow row: the sample with its images embedded and ``dimension`` as a class index."""
    row = sample.model_dump(mode="json")
    row["images"] = [{"bytes": data, "path": None} for data in images]
    row["dimension"] = QUESTION_DIMENSIONS.index(sample.dimension)
    return row


def content_hash(sample: BenchmarkSample, image_digests: Sequence[str]) -> str:
    """Hash of what a sample says and shows (not of its version), to detect changed samples.

    ``image_digests`` are the sha256 hex digests of the embedded image bytes, in order.
    """
    # A sample without regions hashes as before regions existed: upgrading changes no unchanged sample.
    exclude = {"images", "dataset_version"} | (set() if any(sample.regions) else {"regions"})
    content = sample.model_dump(mode="json", exclude=exclude)
    content["images"] = list(image_digests)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def _leaf_columns(schema: pa.Schema) -> list[str]:
    """Parquet leaf column paths of an Arrow schema (e.g. ``images.list.element.bytes``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), buffer)
    metadata = pq.read_metadata(pa.BufferReader(buffer.getvalue()))
    return [metadata.schema.column(i).path for i in range(len(metadata.schema))]


class ShardedParquetWriter:
    """Rows streamed into ``<split>-NNNNN-of-NNNNN.parquet`` shards with bounded row groups.

    At most one row group per split is buffered, so memory stays flat however large the dataset.
    """

    def __init__(
        self, folder: Path, schema: pa.Schema, row_group_rows: int, row_group_bytes: int, shard_bytes: int
    ):
        self.folder = folder
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self.shard_bytes = shard_bytes
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._buffer_bytes: dict[str, int] = {}
        self._writers: dict[str, Any] = {}
        self._shard_written: dict[str, int] = {}
        self._shards: dict[str, list[Path]] = {}
        self.rows: dict[str, int] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, split: str, row: dict[str, Any], nbytes: int) -> None:
        self._buffers.setdefault(split, []).append(row)
        self._buffer_bytes[split] = self._buffer_bytes.get(split, 0) + nbytes
        self.rows[split] = self.rows.get(split, 0) + 1
        if (
            len(self._buffers[split]) >= self.row_group_rows
            or self._buffer_bytes[split] >= self.row_group_bytes
        ):
            self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._buffers.get(split)
        if not rows:
            return
        writer = self._writers.get(split)
        if writer is None:
            path = self.folder / f"{split}-{len(self._shards.get(split, [])):05d}.parquet.partial"
            self._shards.setdefault(split, []).append(path)
            leaves = _leaf_columns(self.schema)
            writer = pq.ParquetWriter(
                path,
                self.schema,
                # Embedded PNG/JPEG bytes do not compress: spend no CPU on them, nor on their statistics.
                compression={leaf: "none" if leaf.startswith("images.") else "zstd" for leaf in leaves},
                write_statistics=[leaf for leaf in leaves if not leaf.startswith("images.")],
                write_page_index=True,
            )
            self._writers[split] = writer
            self._shard_written[split] = 0
        table = pa.Table.from_pylist(rows, schema=self.schema)
        writer.write_table(table, row_group_size=len(rows))
        self._shard_written[split] += self._buffer_bytes[split]
        self._buffers[split] = []
        self._buffer_bytes[split] = 0
        if self._shard_written[split] >= self.shard_bytes:
            writer.close()
            del self._writers[split]

    def close(self) -> dict[str, list[Path]]:
        """Flush, close and name every shard ``<split>-NNNNN-of-NNNNN.parquet``; returns them per split."""
        for split in list(self._buffers):
            self._flush(split)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        named: dict[str, list[Path]] = {}
        for split, paths in self._shards.items():
            named[split] = []
            for index, path in enumerate(paths):
                final = path.with_name(f"{split}-{index:05d}-of-{len(paths):05d}.parquet")
                path.rename(final)
                named[split].append(final)
        return named

    def abort(self) -> None:
        """Close every open file without raising: the caller deletes them (a full disk fails the close too)."""
        for writer in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()
        self._writers.clear()
