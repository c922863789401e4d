"""Export the workspace as a versioned Hugging Face dataset: samples, splits, Parquet shards, manifest.

One source with four labelled candidates becomes one multiple-choice sample per dimension in which
a candidate is defective, plus the ``overall`` question (``build_source_samples``, a pure function).
Samples are validated with ``BenchmarkSample`` and streamed into Parquet shards with small row
groups (the Hub's viewer reads them), images embedded as metadata-free bytes. A version is written
into a temporary folder and renamed into ``exports/<version>`` only when complete; it is never
overwritten. Layout::

    exports/<version>/data/<split>-00000-of-00001.parquet
    exports/<version>/README.md       dataset card (YAML metadata, statistics, figure)
    exports/<version>/samples.png     the card's figure
    exports/<version>/manifest.json   sample ids and content hashes per split
    exports/<version>/changelog.md    added / removed / changed samples since the previous version
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.workspace.catalog import now
from schemas import BenchmarkSample, Candidate, CandidateLabel, GenerationProvenance
from schemas.models import answer_letters, format_answer, sample_id
from schemas.prompts import completion_messages, prompt_messages, question_text, rationale_text
from schemas.taxonomy import LETTERS, NUM_CANDIDATES, QUESTION_DIMENSIONS

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

    from medgen.workspace import Workspace

SPLITS: tuple[str, ...] = ("train", "validation", "test")
VERSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
MANIFEST = "manifest.json"
DATA_DIR = "data"


class ExportConfig(BaseModel):
    """Everything that decides the content of one export version."""

    version: str = Field(
        description="Version name, e.g. 'v1.1'; also the Hub tag. Letters, digits, '.', '_', '-'."
    )
    labels: Literal["consensus", "injected"] = Field(
        default="consensus",
        description="'consensus': annotators' majority labels; 'injected': the synthetic backend's ground truth.",
    )
    train: float = Field(default=0.8, ge=0.0, le=1.0, description="Share of sources in the train split.")
    validation: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of sources in the validation split."
    )
    test: float = Field(default=0.1, ge=0.0, le=1.0, description="Share of sources in the test split.")
    license: str = Field(default="other", description="License id written into the card (e.g. 'cc-by-4.0').")
    pretty_name: str = Field(default="medgen medicine-product image screening", description="Dataset title.")
    simulated_annotators: bool = Field(
        default=False, description="Labels come from simulated annotators: the card says so prominently."
    )
    row_group_rows: int = Field(default=100, ge=1, le=10_000, description="Max rows per Parquet row group.")
    row_group_mb: float = Field(
        default=32.0,
        gt=0,
        le=250,
        description="Max MB per row group (the Hub viewer reads row groups <= 286 MiB; small ones also write faster).",
    )
    shard_mb: float = Field(
        default=500.0, gt=0, description="Max MB per Parquet file before a new shard starts."
    )

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        if not re.fullmatch(VERSION_PATTERN, version):
            raise ValueError(
                f"version {version!r} must start with a letter or digit and hold only letters, digits, '.', '_', '-' "
                "(it becomes a folder name and a git tag), e.g. v1.1"
            )
        return version

    @model_validator(mode="after")
    def _ratios(self) -> ExportConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios train={self.train}, validation={self.validation}, test={self.test} sum to {total:g}; "
                "they must sum to 1"
            )
        return self

    @property
    def ratios(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


# labels -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceLabels:
    """The four candidates' labels for one source, with how they were obtained."""

    labels: tuple[CandidateLabel, ...]
    num_annotators: int = 0
    agreement: float = 1.0


@dataclass
class LabelSet:
    """Labels per source, sources that have none (with the reason), and where the labels came from."""

    items: dict[str, SourceLabels]
    missing: dict[str, str] = field(default_factory=dict)
    simulated: bool = False
    origin: str = "consensus"
    alpha: dict[str, float | None] = field(
        default_factory=dict
    )  # Krippendorff's alpha, consensus labels only


def injected_labels(candidates: Sequence[Candidate]) -> SourceLabels:
    """Ground-truth labels from the synthetic backend's injected defects (``[]`` = acceptable)."""
    unknown = [c.letter for c in candidates if c.injected_defects is None]
    if unknown:
        raise SampleError(f"candidate(s) {','.join(unknown)} have no injected ground truth (not synthetic)")
    labels = tuple(
        CandidateLabel(defects=tuple(c.injected_defects or ()), acceptable=not c.injected_defects)
        for c in sorted(candidates, key=lambda c: c.slot)
    )
    return SourceLabels(labels=labels, num_annotators=0, agreement=1.0)


def load_labels(workspace: Workspace, origin: str) -> LabelSet:
    """Labels for every labelled source of the workspace, from consensus annotations or injected defects."""
    if origin == "injected":
        items: dict[str, SourceLabels] = {}
        missing: dict[str, str] = {}
        by_source: dict[str, list[Candidate]] = {}
        for candidate in workspace.catalog.candidates():
            by_source.setdefault(candidate.source_id, []).append(candidate)
        for source_id, candidates in by_source.items():
            try:
                items[source_id] = injected_labels(candidates)
            except (SampleError, ValidationError) as error:
                missing[source_id] = _reason(error)
        return LabelSet(items=items, missing=missing, origin="injected")
    try:
        from annotation.agreement import krippendorff_alpha
        from annotation.consensus import consensus_labels
    except ImportError as error:
        raise MedgenError(
            f"--labels consensus needs the annotation stage (annotation.consensus: {error}); "
            "for synthetic candidates use --labels injected"
        ) from None
    result = consensus_labels(workspace)
    items = {
        source_id: SourceLabels(
            labels=tuple(c.labels), num_annotators=int(c.num_annotators), agreement=float(c.agreement)
        )
        for source_id, c in result.items.items()
    }
    missing = {
        source_id: f"unresolved annotations: {reason}" for source_id, reason in result.unresolved.items()
    }
    return LabelSet(
        items=items,
        missing=missing,
        simulated=bool(getattr(result, "simulated", False)),
        alpha=krippendorff_alpha(workspace),
    )


# samples ----------------------------------------------------------------------------------------


class SampleError(ValueError):
    """A source cannot make a valid sample; the message says why."""


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"invalid sample: {first['msg']}"
    return str(error)


def build_source_samples(
    source_id: str,
    images: Sequence[str],
    candidates: Sequence[Candidate],
    labels: SourceLabels,
    dataset_version: str,
) -> list[BenchmarkSample]:
    """Every question one source makes, validated: one per defective dimension, plus ``overall``.

    Args:
        source_id: The source's id.
        images: Paths of [source, A, B, C, D].
        candidates: The source's four candidates (any order; slots 0-3).
        labels: One label per candidate, in letter order.
        dataset_version: Written into every sample.

    Raises:
        SampleError: the source cannot make a valid sample (the message says why).
    """
    slots = sorted(c.slot for c in candidates)
    if slots != list(range(NUM_CANDIDATES)):
        have = ",".join(LETTERS[s] for s in slots) or "none"
        raise SampleError(f"needs {NUM_CANDIDATES} candidates A-D, has {have}")
    if len(labels.labels) != NUM_CANDIDATES:
        raise SampleError(f"needs {NUM_CANDIDATES} candidate labels, has {len(labels.labels)}")
    if len(images) != NUM_CANDIDATES + 1:
        raise SampleError(f"needs {NUM_CANDIDATES + 1} images (source, A-D), has {len(images)}")
    ordered = sorted(candidates, key=lambda c: c.slot)
    generation = [c.provenance for c in ordered]
    samples = []
    for dimension in QUESTION_DIMENSIONS:
        letters = answer_letters(labels.labels, dimension)
        if not letters:
            continue
        answer = format_answer(letters)
        rationale = rationale_text(labels.labels, dimension)
        question = question_text(dimension)
        try:
            samples.append(
                BenchmarkSample(
                    id=sample_id(source_id, dimension),
                    source_id=source_id,
                    dimension=dimension,
                    images=list(images),
                    question=question,
                    answer=answer,
                    defects=[list(label.defects) for label in labels.labels],
                    acceptable=[label.acceptable for label in labels.labels],
                    rationale=rationale,
                    num_annotators=labels.num_annotators,
                    agreement=labels.agreement,
                    generation=generation,
                    dataset_version=dataset_version,
                    prompt=prompt_messages(question),
                    completion=completion_messages(rationale, answer),
                )
            )
        except ValidationError as error:
            raise SampleError(f"{dimension}: {_reason(error)}") from None
    if not samples:
        raise SampleError("no question: no candidate is defective or acceptable")
    return samples


def assign_split(source_id: str, ratios: dict[str, float]) -> str:
    """The split of a source: a fixed point in [0, 1) from a hash of its id, cut by the ratios.

    A source's split depends only on its id and the ratios, so adding sources never moves one.
    """
    point = int.from_bytes(hashlib.sha256(f"medgen-split/{source_id}".encode()).digest()[:8], "big") / 2**64
    cumulative = 0.0
    chosen = None
    for split in SPLITS:
        if ratios[split] <= 0:
            continue
        chosen = split
        cumulative += ratios[split]
        if point < cumulative:
            return split
    assert chosen is not None, "ratios must not all be zero"
    return chosen


# images -----------------------------------------------------------------------------------------

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


# dataset schema and rows ------------------------------------------------------------------------


def _generation_features() -> dict[str, Any]:
    from datasets import Value

    types = {str: "string", int: "int64", float: "float64", bool: "bool"}
    return {
        name: Value(types[cast(type, f.annotation)]) for name, f in GenerationProvenance.model_fields.items()
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
            "generation": List(_generation_features()),
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
    content = sample.model_dump(mode="json", exclude={"images", "dataset_version"})
    content["images"] = list(image_digests)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


# streaming writer -------------------------------------------------------------------------------


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
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


# export -----------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What one export wrote and what it skipped."""

    version: str
    path: Path
    num_samples: int
    counts: dict[str, dict[str, int]]
    skipped: dict[str, str]
    changes: dict[str, int]
    previous: str | None
    report_path: Path | None = None


def _previous_export(workspace: Workspace) -> tuple[str, dict[str, Any]] | None:
    rows = workspace.catalog.query("SELECT version, path FROM exports ORDER BY created_at DESC, rowid DESC")
    for row in rows:
        manifest = Path(row["path"]) / MANIFEST
        if manifest.is_file():
            return row["version"], json.loads(manifest.read_text())
    return None


def _changelog(
    version: str, manifest: dict[str, Any], previous: tuple[str, dict[str, Any]] | None
) -> tuple[str, dict[str, int]]:
    def flat(m: dict[str, Any]) -> dict[str, tuple[str, str]]:
        return {sid: (split, digest) for split, items in m["splits"].items() for sid, digest in items.items()}

    current = flat(manifest)
    lines = [f"# Changelog of {version}", ""]
    if previous is None:
        lines.append(f"First version: {len(current)} samples.")
        return "\n".join(lines) + "\n", {"added": len(current), "removed": 0, "changed": 0, "moved": 0}
    old_version, old_manifest = previous
    old = flat(old_manifest)
    added = sorted(set(current) - set(old))
    removed = sorted(set(old) - set(current))
    changed = sorted(s for s in set(current) & set(old) if current[s][1] != old[s][1])
    moved = sorted(s for s in set(current) & set(old) if current[s][0] != old[s][0])
    changes = {"added": len(added), "removed": len(removed), "changed": len(changed), "moved": len(moved)}
    lines.append(f"Compared with {old_version}: {len(old)} → {len(current)} samples.")
    lines.append("")
    lines += [f"- {name}: {count}" for name, count in changes.items()]
    for title, ids in (
        ("Added", added),
        ("Removed", removed),
        ("Changed", changed),
        ("Moved between splits", moved),
    ):
        if ids:
            lines += ["", f"## {title}", ""]
            source_of = current if title != "Removed" else old
            lines += [f"- `{sid}` ({source_of[sid][0]})" for sid in ids]
    return "\n".join(lines) + "\n", changes


def _check_new_version(workspace: Workspace, version: str) -> Path:
    target = workspace.exports_dir / version
    recorded = workspace.catalog.query("SELECT path FROM exports WHERE version = ?", (version,))
    if target.exists() or recorded:
        if target.is_dir() and (target / MANIFEST).is_file() and not recorded:
            _record(workspace, version, target, json.loads((target / MANIFEST).read_text()))
        raise MedgenError(
            f"export version {version} already exists ({target}); versions are immutable: choose a new --version"
        )
    return target


def _record(workspace: Workspace, version: str, path: Path, manifest: dict[str, Any]) -> None:
    summary = {
        "counts": manifest.get("counts", {}),
        "labels": manifest.get("labels"),
        "changes": manifest.get("changes"),
    }
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO exports VALUES (?, ?, ?, ?, ?)",
            (
                version,
                str(path),
                manifest.get("created_at", now()),
                manifest["num_samples"],
                json.dumps(summary),
            ),
        )


def export_dataset(
    workspace: Workspace,
    config: ExportConfig,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Build, validate and write export ``config.version`` of the workspace; refuses an existing version.

    ``on_start(num_sources)`` is called once, ``on_progress(samples_written)`` after each source.
    """
    from medgen.export.card import CardStats, write_card

    target = _check_new_version(workspace, config.version)
    labels = load_labels(workspace, config.labels)
    previous = _previous_export(workspace)
    workspace.exports_dir.mkdir(parents=True, exist_ok=True)
    for leftover in workspace.exports_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = workspace.exports_dir / f".tmp-{config.version}-{uuid.uuid4().hex[:8]}"
    features = dataset_features()
    writer = ShardedParquetWriter(
        tmp / DATA_DIR,
        features.arrow_schema,
        row_group_rows=config.row_group_rows,
        row_group_bytes=int(config.row_group_mb * 2**20),
        shard_bytes=int(config.shard_mb * 2**20),
    )
    stats = CardStats(
        config=config, simulated=labels.simulated or config.simulated_annotators, alpha=labels.alpha
    )
    hashes: dict[str, dict[str, str]] = {split: {} for split in SPLITS}
    skipped: dict[str, str] = {}
    try:
        sources = workspace.catalog.sources()
        if on_start:
            on_start(len(sources))
        for source in sources:
            samples_before = stats.num_samples
            try:
                source_labels = labels.items.get(source.id)
                if source_labels is None:
                    reason = labels.missing.get(source.id)
                    if reason is None:
                        reason = "not annotated yet" if labels.origin == "consensus" else "no candidates yet"
                    raise SampleError(reason)
                candidates = workspace.catalog.candidates(source.id)
                paths = [workspace.store.path(source.image_key)] + [
                    workspace.store.path(c.image_key) for c in sorted(candidates, key=lambda c: c.slot)
                ]
                samples = build_source_samples(
                    source.id, [str(p) for p in paths], candidates, source_labels, config.version
                )
                try:
                    images = [clean_image_bytes(path) for path in paths]
                except (OSError, ValueError) as error:
                    raise SampleError(f"unreadable image: {error}") from None
            except SampleError as error:
                skipped[source.id] = str(error)
                stats.skip(str(error))
            else:
                split = assign_split(source.id, config.ratios)
                nbytes = sum(len(data) for data in images)
                digests = [hashlib.sha256(data).hexdigest() for data in images]
                for sample in samples:
                    writer.write(split, sample_row(sample, images), nbytes)
                    hashes[split][sample.id] = content_hash(sample, digests)
                    stats.add(split, sample, images)
            if on_progress:
                on_progress(stats.num_samples - samples_before)
        shards = writer.close()
        if stats.num_samples == 0:
            reasons = "; ".join(sorted(set(skipped.values()))[:3]) or "the workspace has no sources"
            hint = (
                "; pull annotations first (medgen annotate pull) or use --labels injected for synthetic candidates"
                if labels.origin == "consensus"
                else ""
            )
            raise MedgenError(f"no source made a valid sample ({reasons}): nothing to export{hint}")
        manifest: dict[str, Any] = {
            "version": config.version,
            "created_at": now(),
            "labels": labels.origin,
            "num_samples": stats.num_samples,
            "counts": stats.counts_by_split(),
            "config": config.model_dump(),
            "splits": {split: items for split, items in hashes.items() if items},
        }
        changelog, changes = _changelog(config.version, manifest, previous)
        manifest["previous"] = previous[0] if previous else None
        manifest["changes"] = changes
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        (tmp / "changelog.md").write_text(changelog)
        write_card(
            tmp, stats, features, shards, changes=changes, previous=manifest["previous"], skipped=len(skipped)
        )
        tmp.rename(target)
    except BaseException:
        writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _record(workspace, config.version, target, manifest)
    report_path = None
    if skipped:
        workspace.reports_dir.mkdir(parents=True, exist_ok=True)
        report_path = workspace.reports_dir / f"export-{config.version}-skipped.json"
        atomic_write_text(report_path, json.dumps(skipped, indent=1, sort_keys=True) + "\n")
    return ExportReport(
        version=config.version,
        path=target,
        num_samples=stats.num_samples,
        counts=stats.counts_by_split(),
        skipped=skipped,
        changes=changes,
        previous=manifest["previous"],
        report_path=report_path,
    )


# loading ----------------------------------------------------------------------------------------


def _local_export(path: Path, revision: str | None) -> Path:
    versioned = [path / revision, path / "exports" / revision] if revision else []
    for folder in [*versioned, path]:
        if (folder / DATA_DIR).is_dir():
            return folder
    raise MedgenError(
        f"{path} is not a medgen export (no {DATA_DIR}/ folder): pass exports/<version> or a Hub id ORG/NAME"
    )


def load_export(
    dataset: str | Path, split: str | None = None, revision: str | None = None
) -> datasets.DatasetDict | datasets.Dataset:
    """Load an export as a ``datasets`` dataset: a local export folder, or a Hub id at ``revision`` (a tag).

    Args:
        dataset: ``exports/<version>`` (or ``exports`` / a workspace with ``revision`` = version), or ``ORG/NAME``.
        split: ``train``, ``validation`` or ``test``; None loads every split as a DatasetDict.
        revision: A version tag (``v1.1``) or commit on the Hub, or a version under a local exports folder.

    Returns:
        The split as a Dataset, or all splits as a DatasetDict; ``images`` decode as PIL images.
    """
    import datasets

    path = Path(dataset).expanduser()
    if path.exists():
        folder = _local_export(path, revision)
        data_files = {
            s: str(folder / DATA_DIR / f"{s}-*.parquet")
            for s in SPLITS
            if any((folder / DATA_DIR).glob(f"{s}-*.parquet"))
        }
        if split is not None and split not in data_files:
            raise MedgenError(f"{folder} has no {split!r} split; it has {', '.join(data_files) or 'none'}")
        return datasets.load_dataset("parquet", data_files=data_files, split=split)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(dataset)):
        raise MedgenError(f"{dataset} is neither an existing export folder nor a Hub dataset id ORG/NAME")
    return datasets.load_dataset(str(dataset), split=split, revision=revision)
