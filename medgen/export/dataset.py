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

import errno
import hashlib
import itertools
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medgen.errors import MedgenError
from medgen.export.card import CardStats, write_card
from medgen.export.config import ExportConfig
from medgen.export.layout import DATA_DIR, MANIFEST
from medgen.export.manifest import SampleHashes, write_changelog, write_manifest
from medgen.export.parquet import (
    ShardedParquetWriter,
    clean_image_bytes,
    content_hash,
    dataset_features,
    sample_row,
)
from medgen.export.rationales import origin_of, teacher_rationales
from medgen.export.samples import SampleError, assign_split, build_source_samples, load_labels
from medgen.export.tables import export_folders, is_recorded, record_export
from medgen.files import atomic_write_text, read_ahead
from medgen.workspace.catalog import now

if TYPE_CHECKING:
    from medgen.workspace import Workspace
    from schemas import Candidate, SourceImage


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


def _previous_export(workspace: Workspace) -> tuple[str, Path] | None:
    """The latest export still on disk: its version and manifest (read only when the changelog is written)."""
    for version, folder in export_folders(workspace):
        manifest = Path(folder) / MANIFEST
        if manifest.is_file():
            return version, manifest
    return None


def _sources_with_images(
    workspace: Workspace, chunk: int = 500
) -> Iterator[tuple[SourceImage, list[Candidate], list[Path]]]:
    """Every source, its candidates in slot order and its image files (source first): one query per chunk.

    Sources are read a chunk at a time, not all held (48k source models took 79 MB).
    """
    sources = workspace.catalog.iter_sources(chunk)
    while batch := list(itertools.islice(sources, chunk)):
        candidates = workspace.catalog.candidates_by_source([source.id for source in batch])
        for source in batch:
            mine = candidates[source.id]
            paths = [workspace.store.path(source.image_key)] + [
                workspace.store.path(c.image_key) for c in mine
            ]
            yield source, mine, paths


def _check_new_version(workspace: Workspace, version: str) -> Path:
    target = workspace.exports_dir / version
    recorded = is_recorded(workspace, version)
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
    record_export(
        workspace, version, str(path), manifest.get("created_at", now()), manifest["num_samples"], summary
    )


def export_dataset(
    workspace: Workspace,
    config: ExportConfig,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Build, validate and write export ``config.version`` of the workspace; refuses an existing version.

    Written into a temporary folder renamed into place at the end: a crash or an error keeps nothing.
    ``on_start(num_sources)`` is called once, ``on_progress(samples_written)`` after each source.
    """
    target = _check_new_version(workspace, config.version)
    labels = load_labels(
        workspace, config.labels, config.min_agreement, config.min_annotators, config.require_review
    )
    teacher = teacher_rationales(workspace) if config.rationale == "teacher" else {}
    previous = _previous_export(workspace)
    tmp = _scratch_folder(workspace, config.version)
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
    skipped: dict[str, str] = {}
    hashes = SampleHashes(tmp / ".hashes.sqlite")  # not a dict: ~1 KB per source, see medgen.export.manifest
    try:
        if on_start:
            on_start(workspace.catalog.count("sources"))
        for source, samples, images in _labelled_samples(workspace, labels, config, teacher, skipped, stats):
            if samples:
                _write_source(writer, hashes, stats, source.id, samples, images, config, teacher)
            if on_progress:
                on_progress(len(samples))
        shards = writer.close()
        manifest = _finish(tmp, config, labels, stats, hashes, previous, skipped)
        write_card(
            tmp,
            stats,
            features,
            shards,
            changes=manifest["changes"],
            previous=manifest["previous"],
            skipped=len(skipped),
        )
        tmp.rename(target)
    except BaseException as error:
        writer.abort()
        hashes.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError):
            raise _disk_error(error, config.version, workspace.exports_dir) from None
        raise
    _record(workspace, config.version, target, manifest)
    return ExportReport(
        version=config.version,
        path=target,
        num_samples=stats.num_samples,
        counts=stats.counts_by_split(),
        skipped=skipped,
        changes=manifest["changes"],
        previous=manifest["previous"],
        report_path=_skipped_report(workspace, config.version, skipped),
    )


def _scratch_folder(workspace: Workspace, version: str) -> Path:
    """A fresh temporary folder for the version; leftovers of crashed exports are removed first."""
    workspace.exports_dir.mkdir(parents=True, exist_ok=True)
    for leftover in workspace.exports_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return workspace.exports_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"


def _labelled_samples(
    workspace: Workspace,
    labels: Any,
    config: ExportConfig,
    teacher: dict[str, Any],
    skipped: dict[str, str],
    stats: CardStats,
) -> Iterator[tuple[SourceImage, list[Any], list[bytes]]]:
    """(source, its samples, its five images cleaned) per source; one that makes no sample comes with none,
    its reason in ``skipped``. The next sources' images are read while one is written (on a cold disk,
    a read at a time was most of an export's time); only labelled sources' images are read."""
    sources = _sources_with_images(workspace)
    for source, candidates, paths in read_ahead(
        sources, lambda item: item[2] if item[0].id in labels.items else ()
    ):
        try:
            samples, images = _source_samples(source, candidates, paths, labels, config, teacher)
        except SampleError as error:
            skipped[source.id] = str(error)
            stats.skip(str(error))
            samples, images = [], []
        yield source, samples, images


def _source_samples(
    source: SourceImage,
    candidates: list[Candidate],
    paths: list[Path],
    labels: Any,
    config: ExportConfig,
    teacher: dict[str, Any],
) -> tuple[list[Any], list[bytes]]:
    """One source's samples and its images' bytes, without metadata.

    Raises:
        SampleError: the source makes no sample (not labelled, labels unusable, an image unreadable).
    """
    source_labels = labels.items.get(source.id)
    if source_labels is None:
        reason = labels.missing.get(source.id)
        if reason is None:
            reason = "not annotated yet" if labels.origin == "consensus" else "no candidates yet"
        raise SampleError(reason)
    samples = build_source_samples(
        source.id,
        [str(p) for p in paths],
        candidates,
        source_labels,
        config.version,
        config.rationale,
        teacher,
    )
    try:
        return samples, [clean_image_bytes(path) for path in paths]
    except (OSError, ValueError) as error:
        raise SampleError(f"unreadable image: {error}") from None


def _write_source(
    writer: ShardedParquetWriter,
    hashes: SampleHashes,
    stats: CardStats,
    source_id: str,
    samples: list[Any],
    images: list[bytes],
    config: ExportConfig,
    teacher: dict[str, Any],
) -> None:
    """A source's samples into its split's Parquet, their content hashes, and the card's counts."""
    split = assign_split(source_id, config.ratios)
    nbytes = sum(len(data) for data in images)
    digests = [hashlib.sha256(data).hexdigest() for data in images]
    for sample in samples:
        writer.write(split, sample_row(sample, images), nbytes)
        hashes.add(split, sample.id, content_hash(sample, digests))
        stats.add(split, sample, images)
        origin = origin_of(sample.id, sample.answer, config.rationale, teacher)
        stats.rationale(origin, teacher[sample.id].model if origin == "teacher" else None)


def _finish(
    tmp: Path,
    config: ExportConfig,
    labels: Any,
    stats: CardStats,
    hashes: SampleHashes,
    previous: tuple[str, Path] | None,
    skipped: dict[str, str],
) -> dict[str, Any]:
    """The changelog against the previous version and the manifest, written; refuses an empty export."""
    if stats.num_samples == 0:
        reasons = "; ".join(sorted(set(skipped.values()))[:3]) or "the workspace has no sources"
        hint = (
            "; pull annotations first (medgen annotate pull) or use --labels injected for synthetic candidates"
            if labels.origin == "consensus"
            else ""
        )
        raise MedgenError(f"no source made a valid sample ({reasons}): nothing to export{hint}")
    if previous is not None:
        hashes.load_previous(previous[1])
    changes = write_changelog(tmp / "changelog.md", config.version, hashes, previous and previous[0])
    manifest: dict[str, Any] = {  # and "splits", streamed from ``hashes``
        "version": config.version,
        "created_at": now(),
        "labels": labels.origin,
        "num_samples": stats.num_samples,
        "counts": stats.counts_by_split(),
        "config": config.model_dump(),
        "previous": previous[0] if previous else None,
        "changes": changes,
    }
    write_manifest(tmp / MANIFEST, manifest, hashes)
    hashes.close()
    return manifest


def _disk_error(error: OSError, version: str, folder: Path) -> MedgenError:
    full = error.errno == errno.ENOSPC or "No space left" in str(error)
    reason = (
        f"the disk under {folder} is full (an export needs about as much free space as the images it embeds)"
        if full
        else f"cannot write under {folder} ({error.strerror or error})"
    )
    return MedgenError(f"export {version} stopped, nothing kept: {reason}")


def _skipped_report(workspace: Workspace, version: str, skipped: dict[str, str]) -> Path | None:
    """The sources that made no sample, with their reason (None when every source made samples)."""
    if not skipped:
        return None
    workspace.reports_dir.mkdir(parents=True, exist_ok=True)
    path = workspace.reports_dir / f"export-{version}-skipped.json"
    atomic_write_text(path, json.dumps(skipped, indent=1, sort_keys=True) + "\n")
    return path
