"""Ingest source photos: validate, normalise to RGB, deduplicate, compute the product mask.

Each file either becomes a source, is reported as a duplicate of an existing source (by content
or perceptual hash), or is rejected with a one-line reason. One bad file never stops the batch,
and re-adding the same files adds nothing.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medgen.errors import MedgenError
from medgen.files import atomic_writer
from medgen.workspace import Workspace
from schemas import SourceImage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MIN_SIDE = 64
"""Smaller images cannot show a product's text and shape, nor feed a diffusion model."""
MAX_PIXELS = 40_000_000
"""Larger images are refused as possible decompression bombs (PIL's own limit is ~89 MP)."""
PHASH_THRESHOLD = 4
"""Hamming distance at or below which two 64-bit perceptual hashes count as the same photo."""
NO_IMAGES = f"folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
SHOWN = 20
"""Duplicates and rejections (and additions) kept in memory and printed per kind; the report lists all."""


class RejectedFile(Exception):
    """A file that cannot become a source; the message is the one-line reason."""


class IngestReport:
    """What one ``sources add`` did, with memory that stays flat however many files it takes.

    ``summary()`` counts every file. ``added``, ``duplicates`` and ``rejected`` keep the first ``SHOWN``
    of each kind, for the console; every file goes, as it is decided, to a temporary file per kind,
    from which ``write_report`` makes the JSON report (``report_path``).
    """

    KINDS = ("added", "duplicate", "rejected")

    def __init__(self) -> None:
        self.added: list[tuple[str, str]] = []  # (file, source id)
        self.duplicates: list[tuple[str, str, str]] = []  # (file, existing source id, how)
        self.rejected: list[tuple[str, str]] = []  # (file, reason)
        self.report_path: Path | None = None
        self._counts = dict.fromkeys(self.KINDS, 0)
        # Closed by close(); deleted by the system even if the process dies.
        self._parts = {kind: tempfile.TemporaryFile() for kind in self.KINDS}  # noqa: SIM115

    def add(self, name: str, source_id: str) -> None:
        self._record("added", self.added, (name, source_id), {"file": name, "source_id": source_id})

    def duplicate(self, name: str, existing: str, how: str) -> None:
        entry = {"file": name, "duplicate_of": existing, "how": how}
        self._record("duplicate", self.duplicates, (name, existing, how), entry)

    def reject(self, name: str, reason: str) -> None:
        self._record("rejected", self.rejected, (name, reason), {"file": name, "reason": reason})

    def _record(self, kind: str, shown: list, item: tuple, entry: dict[str, str]) -> None:
        self._counts[kind] += 1
        if len(shown) < SHOWN:
            shown.append(item)
        self._parts[kind].write(json.dumps(entry).encode() + b"\n")

    def summary(self) -> dict[str, int]:
        return dict(self._counts)

    def entries(self, kind: str) -> Iterator[bytes]:
        """Every entry of one kind so far, as JSON, in the order decided."""
        part = self._parts[kind]
        part.flush()
        part.seek(0)
        for line in part:
            yield line.rstrip(b"\n")
        part.seek(0, os.SEEK_END)

    def close(self) -> None:
        for part in self._parts.values():
            part.close()


class PhashIndex:
    """The perceptual hashes of the known sources, compared with a new one all at once.

    One XOR and popcount over a uint64 array per new photo instead of
    a Python loop over ``ImageHash`` objects, which made adding N sources quadratic. Each hash is kept
    with an integer key (the source's catalog rowid): 16 bytes per source, not a Python object.
    """

    def __init__(self) -> None:
        self._size = 0
        self._hashes = np.empty(1024, dtype=np.uint64)
        self._keys = np.empty(1024, dtype=np.int64)

    def add(self, key: int, phash: imagehash.ImageHash | str) -> None:
        if self._size == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.empty_like(self._hashes)])
            self._keys = np.concatenate([self._keys, np.empty_like(self._keys)])
        self._hashes[self._size] = int(str(phash), 16)
        self._keys[self._size] = key
        self._size += 1

    def near(self, phash: imagehash.ImageHash, threshold: int) -> tuple[int, int] | None:
        """The key of the first known hash within ``threshold`` bits of ``phash``, and the distance."""
        if not self._size:
            return None
        distances = np.bitwise_count(self._hashes[: self._size] ^ np.uint64(int(str(phash), 16)))
        within = np.flatnonzero(distances <= threshold)
        return (int(self._keys[within[0]]), int(distances[within[0]])) if within.size else None


@dataclass
class NormalisedImage:
    rgb: Image.Image
    alpha_mask: Image.Image | None


def expand_paths(paths: Iterable[str | Path], missing: list[tuple[str, str]]) -> Iterator[Path]:
    """The image files under ``paths`` (files, folders searched recursively, glob patterns), each once.

    Lazily, one folder listed at a time: a folder of 100k photos costs its walk, not a list of 100k
    paths. Each argument's files come in sorted order (``sorted(folder.rglob("*"))``'s). Arguments that
    match nothing are appended to ``missing`` with the reason.
    """
    seen = _Int64Set()  # hashes of the resolved paths: a file named twice is taken once (8 bytes each)
    for raw in paths:
        text = str(raw)
        path = Path(text).expanduser()
        if path.is_dir():
            found, empty = _walk(path, missing), NO_IMAGES
        elif path.is_file():
            found, empty = iter([path]), ""
        elif glob.has_magic(text):
            matched = sorted(glob.iglob(str(path), recursive=True), key=lambda p: Path(p).parts)
            found, empty = (Path(p) for p in matched if os.path.isfile(p)), "pattern matched no files"
        else:
            missing.append((text, "no such file or folder"))
            continue
        none = True
        for file in found:
            none = False
            resolved = file.resolve()
            if seen.add(hash(str(resolved))):
                yield resolved
        if none and empty:
            missing.append((text, empty))


def _walk(folder: Path, missing: list[tuple[str, str]]) -> Iterator[Path]:
    """The image files under ``folder`` in ``sorted(folder.rglob("*"))``'s order; symlinked folders not followed.

    A folder's listing is held as its bare names, not as ``(name, is_dir, is_file)`` tuples or paths
    (a few times the memory, for a flat folder of a hundred thousand photos).
    """
    names: list[str] = []
    folders: set[str] = set()
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    folders.add(entry.name)
                    names.append(entry.name)
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    names.append(entry.name)
    except OSError as error:
        missing.append((str(folder), f"cannot list the folder: {error.strerror or error}"))
        return
    names.sort()
    base = str(folder)
    for name in names:
        if name in folders:
            yield from _walk(folder / name, missing)
        else:
            yield Path(os.path.join(base, name))


class _Int64Set:
    """A set of 64-bit ints at 8 bytes each (a Python ``set`` of them takes ~100): a sorted array and a small set."""

    MERGE = 4096

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()

    def add(self, value: int) -> bool:
        """Add ``value``; whether it was new."""
        if value in self._recent:
            return False
        at = int(np.searchsorted(self._sorted, value))
        if at < len(self._sorted) and self._sorted[at] == value:
            return False
        self._recent.add(value)
        if len(self._recent) >= self.MERGE:
            recent = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
            self._sorted = np.union1d(self._sorted, recent)
            self._recent.clear()
        return True


def load_and_normalise(path: Path) -> NormalisedImage:
    """Fully decode one file and turn it into 8-bit RGB (+ the alpha channel as a mask, if any)."""
    if path.stat().st_size == 0:
        raise RejectedFile("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise RejectedFile(
                        f"{image.width}x{image.height} exceeds {MAX_PIXELS // 1_000_000} MP (possible decompression bomb)"
                    )
                image.load()
                image = ImageOps.exif_transpose(image)
    except RejectedFile:
        raise
    except UnidentifiedImageError:
        raise RejectedFile("not an image PIL can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedFile("decompression bomb: pixel count far above its file size allows") from None
    except (OSError, SyntaxError, ValueError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason.lower() or isinstance(error, SyntaxError):
            raise RejectedFile(f"truncated or corrupt image ({reason})") from None
        raise RejectedFile(f"cannot decode ({reason})") from None
    if min(image.size) < MIN_SIDE:
        raise RejectedFile(f"too small: {image.width}x{image.height}, need at least {MIN_SIDE}px per side")
    return normalise(image)


def normalise(image: Image.Image) -> NormalisedImage:
    """Palette, CMYK, 16/32-bit, greyscale and alpha modes to RGB; alpha becomes the product mask."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / high * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-9)
        image = Image.fromarray(((array - array.min()) / span * 255.0).astype(np.uint8), mode="L")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    alpha_mask = None
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 250:  # an alpha channel that is fully opaque carries no mask
            alpha_mask = Image.fromarray(np.where(alpha >= 128, 255, 0).astype(np.uint8), mode="L")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return NormalisedImage(rgb=image, alpha_mask=alpha_mask)


def product_mask(rgb: Image.Image) -> Image.Image:
    """Estimate the product region of a photo (255 = product) with OpenCV.

    The background colour is modelled from the image border; pixels far from it, cleaned by
    morphology and hole filling, form the product. GrabCut on a centred rectangle is the fallback
    when that gives an implausible mask (busy backgrounds).
    """
    full_w, full_h = rgb.size
    scale = 256 / max(full_w, full_h)
    small = np.asarray(
        rgb.resize((max(1, round(full_w * scale)), max(1, round(full_h * scale))), Image.BILINEAR)
    )
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    distance = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    distance = cv2.GaussianBlur(distance, (3, 3), 0)
    threshold = max(
        18.0, float(np.percentile(np.linalg.norm(border - np.median(border, axis=0), axis=1), 95)) * 1.5
    )
    mask = (distance > threshold).astype(np.uint8) * 255
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = _keep_large_components(mask)
    mask = _fill_holes(mask)
    share = mask.mean() / 255
    if not 0.02 <= share <= 0.9:
        mask = _grabcut(small)
    resized = cv2.resize(mask, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(np.where(resized >= 128, 255, 0).astype(np.uint8), mode="L")


def _keep_large_components(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = [i + 1 for i, area in enumerate(areas) if area >= max(0.01 * mask.size, 0.1 * areas.max())]
    return np.isin(labels, keep).astype(np.uint8) * 255


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 255)
    holes = cv2.bitwise_not(flood)[1:-1, 1:-1]
    return cv2.bitwise_or(mask, holes)


def _grabcut(small: np.ndarray) -> np.ndarray:
    h, w = small.shape[:2]
    rect = (int(w * 0.15), int(h * 0.15), int(w * 0.7), int(h * 0.7))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, rect, bgd, fgd, 3, cv2.GC_INIT_WITH_RECT)
    result = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    if result.mean() / 255 < 0.02:  # nothing found: the centred rectangle is the best guess left
        result[rect[1] : rect[1] + rect[3], rect[0] : rect[0] + rect[2]] = 255
    return result


def content_id(rgb: Image.Image) -> str:
    """sha256 over size and pixels: equal pixels are the same source, whatever the file format."""
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def add_sources(
    workspace: Workspace,
    paths: Iterable[str | Path],
    phash_threshold: int = PHASH_THRESHOLD,
    on_progress: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> IngestReport:
    """Add every image under ``paths`` to the workspace; see the module docstring."""
    paths = [str(p) for p in paths]
    missing: list[tuple[str, str]] = []
    total = sum(1 for _ in expand_paths(paths, missing))  # a first walk only counts, for the progress bar
    report = IngestReport()
    try:
        for name, reason in missing:
            report.reject(name, reason)
        if on_start:
            on_start(total)
        _add_files(workspace, expand_paths(paths, []), report, phash_threshold, on_progress)
        report.report_path = write_report(workspace, report)
    finally:
        report.close()
    return report


def _add_files(
    workspace: Workspace,
    files: Iterator[Path],
    report: IngestReport,
    phash_threshold: int,
    on_progress: Callable[[str], None] | None,
) -> None:
    catalog, store = workspace.catalog, workspace.store
    known_phashes = PhashIndex()  # ids are looked up in the catalog: memory stays flat with its size
    for rowid, phash in catalog.source_phashes():
        known_phashes.add(rowid, phash)
    for path in files:
        name = str(path)
        try:
            image = load_and_normalise(path)
            source_id = content_id(image.rgb)
            if catalog.source_rowid(source_id) is not None:
                report.duplicate(name, source_id, "identical pixels")
                continue
            phash = imagehash.phash(image.rgb)
            near = known_phashes.near(phash, phash_threshold)
            if near is not None:
                report.duplicate(name, catalog.source_at(near[0]), f"perceptual hash within {near[1]} bits")
                continue
            mask = image.alpha_mask if image.alpha_mask is not None else product_mask(image.rgb)
            # Files first, then the row: a crash in between leaves a file the rerun reuses, never a dangling row.
            source = SourceImage(
                id=source_id,
                original_name=path.name,
                image_key=store.put_image(image.rgb),
                mask_key=store.put_image(mask),
                width=image.rgb.width,
                height=image.rgb.height,
                phash=str(phash),
                mask_from_alpha=image.alpha_mask is not None,
                added_at=datetime.now(timezone.utc),
            )
            catalog.add_source(source)
            known_phashes.add(catalog.source_rowid(source_id) or 0, phash)
            report.add(name, source_id)
        except RejectedFile as reason:
            report.reject(name, str(reason))
        except MemoryError:
            report.reject(name, "ran out of memory while decoding")
        finally:
            if on_progress:
                on_progress(name)


def write_report(workspace: Workspace, report: IngestReport) -> Path:
    """``reports/sources-add-<time>.json``: the summary, then every file by kind, one entry per line."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = workspace.reports_dir / f"sources-add-{stamp}.json"
    with atomic_writer(path) as out:
        out.write(b'{\n  "summary": ' + json.dumps(report.summary()).encode())
        for key, kind in (("added", "added"), ("duplicates", "duplicate"), ("rejected", "rejected")):
            out.write(f',\n  "{key}": ['.encode())
            separator = b"\n    "
            for entry in report.entries(kind):
                out.write(separator + entry)
                separator = b",\n    "
            out.write(b"\n  ]" if separator != b"\n    " else b"]")
        out.write(b"\n}\n")
    return path


def require_sources(workspace: Workspace) -> list[SourceImage]:
    sources = workspace.catalog.sources()
    if not sources:
        raise MedgenError("the workspace has no sources yet: add photos with `medgen sources add PATH...`")
    return sources
