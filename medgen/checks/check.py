"""`medgen check`: every candidate measured against its original, on CPU, before anyone looks at it.

Two inputs, one path:

- a workspace: every source's candidates (or those of ``source_ids``); results go to the catalog
  (``candidate_checks``) as each source is done, so an interrupted run resumes where it stopped and a
  second run measures only what is new (or what older settings measured);
- plain files: ``medgen check SOURCE CANDIDATE...``, the source's product mask from its alpha channel or
  estimated as ``medgen sources add`` does.

The expected scale of a product (``CheckConfig.expected_scale`` when given): 1 for the diffusers recipes (the
product is pasted back at its own pixel size); for plain files, the median over the candidates given (three
located at least); none for the synthetic backend's composites, which place the product at each scene's own
scale (``scale_wrong`` is then not judged).

Outputs under ``output_dir``: ``checks.jsonl`` (one line per candidate: source, candidate, findings,
measured), ``checks.csv`` and ``index.html`` (``medgen.checks.sheet``). Memory stays flat with the number of
candidates: sources are measured a few at a time and records are written as they come.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from medgen.checks import tables
from medgen.checks.config import CheckConfig
from medgen.checks.findings import findings, missing, scale_change
from medgen.checks.measure import VALUE_NAMES, Measured, measure, prepare_reference
from medgen.errors import MedgenError
from medgen.workspace import Workspace

KEPT_SCALE_RECIPES = ("background", "outpaint", "img2img")
"""Diffusers recipes that paste the product back at its own pixel size: expected scale 1."""

ProgressFn = Callable[[int, int], None]


@dataclass
class Group:
    """A source and the candidates checked against it: (id, image path, expected scale or None)."""

    source_id: str
    source_path: Path
    load_source: Callable[[], tuple[np.ndarray, np.ndarray]]  # RGB uint8, product mask (bool)
    candidates: list[tuple[str, Path, float | None]]
    siblings_scale: bool = False  # expected scale: the median over the group (plain files)


@dataclass
class CheckReport:
    checked: int = 0
    reused: int = 0
    with_findings: int = 0
    missing: int = 0
    tags: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)


def _rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (OpenCV's decoder: quicker than PIL's for large PNGs)."""
    data = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if data is None:  # a format OpenCV does not read: PIL's
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    return cv2.cvtColor(data, cv2.COLOR_BGR2RGB)


def check_group(group: Group, config: CheckConfig) -> list[dict[str, Any]]:
    """Measure a group's candidates against its source; one record per candidate, in order.

    A candidate's expected scale is its own (``Group.candidates``) or, when the group says ``siblings``, the
    median over the group's located candidates."""
    try:
        original, mask = group.load_source()
        reference = prepare_reference(original, mask, config)
    # An original unreadable, too small or odd to compare with: nothing of the group is judged.
    except (OSError, cv2.error, ValueError) as error:
        unjudged = Measured(dict.fromkeys(VALUE_NAMES), located_by=f"error: source {type(error).__name__}")
        measured = [unjudged for _ in group.candidates]
    else:
        measured = [_measure(reference, path, config) for _, path, _ in group.candidates]
    located = [
        m.values["scale"] for m in measured if m.values["scale"] is not None and not missing(m.values, config)
    ]
    siblings = statistics.median(located) if len(located) >= 3 and group.siblings_scale else None
    records = []
    for (candidate_id, path, recipe_scale), result in zip(group.candidates, measured, strict=True):
        expected = config.expected_scale or recipe_scale or siblings
        values = dict(result.values)
        values["scale_change"] = scale_change(values["scale"], expected)
        records.append(
            {
                "source": group.source_id,
                "candidate": candidate_id,
                "findings": [f.model_dump() for f in findings(values, config)],
                "measured": {k: None if v is None else round(float(v), 4) for k, v in values.items()},
                "path": str(path),
                "source_path": str(group.source_path),
                "located_by": result.located_by,
                "generated": result.generated,
                "expected_scale": None if expected is None else round(float(expected), 4),
                "product_box": None
                if result.product_box is None
                else [round(v, 4) for v in result.product_box],
            }
        )
    return records


def _measure(reference: Any, path: Path, config: CheckConfig) -> Measured:
    """One candidate's measurement; a file that cannot be read, or an image too small or odd to measure, is
    reported as not judged (``located_by`` says why) and the run goes on."""
    try:
        return measure(reference, _rgb(path), config)
    except (OSError, cv2.error, ValueError, np.linalg.LinAlgError) as error:
        values: dict[str, float | None] = dict.fromkeys(VALUE_NAMES)
        return Measured(values, located_by=f"error: {type(error).__name__}")


# ---- inputs -------------------------------------------------------------------------------------------


def files_group(source: Path, candidates: Sequence[Path]) -> Group:
    """A source photo and candidate files; bad files fail here in one line."""
    from medgen.sources.ingest import normalise, product_mask

    if not candidates:
        raise MedgenError(
            "give the source photo, then at least one candidate image: medgen check SOURCE CAND..."
        )
    for path in (source, *candidates):
        if not Path(path).is_file():
            raise MedgenError(f"no such image file: {path}")
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # noqa: BLE001 - any decoder error is the same bad input
            raise MedgenError(f"cannot read {path} as an image ({type(error).__name__})") from None

    def load() -> tuple[np.ndarray, np.ndarray]:
        with Image.open(source) as image:
            normal = normalise(ImageOps.exif_transpose(image))  # 8-bit RGB, the alpha channel as a mask
        mask = normal.alpha_mask if normal.alpha_mask is not None else product_mask(normal.rgb)
        return np.asarray(normal.rgb), np.asarray(mask) >= 128

    return Group(Path(source).name, Path(source), load, [(str(p), Path(p), None) for p in candidates], True)


def source_group(workspace: Workspace, source: Any, candidates: Sequence[Any]) -> Group:
    """The group of a workspace source (``SourceImage``) and some of its candidates (``Candidate``, in order)."""
    store = workspace.store

    def load() -> tuple[np.ndarray, np.ndarray]:
        return _rgb(store.path(source.image_key)), np.asarray(store.open(source.mask_key).convert("L")) >= 128

    def expected(candidate: Any) -> float | None:
        kept = (
            candidate.provenance.backend != "synthetic" and candidate.provenance.recipe in KEPT_SCALE_RECIPES
        )
        return 1.0 if kept else None

    return Group(
        source.id,
        store.path(source.image_key),
        load,
        [(c.id, store.path(c.image_key), expected(c)) for c in candidates],
    )


def workspace_groups(workspace: Workspace, source_ids: Sequence[str] | None = None) -> Iterator[Group]:
    """Each source of the workspace with candidates (or of ``source_ids``), in catalog order."""
    wanted = set(source_ids) if source_ids else None
    batch: list[Any] = []

    def flush() -> Iterator[Group]:
        by_source = workspace.catalog.candidates_by_source([s.id for s in batch])
        for source in batch:
            candidates = sorted(by_source.get(source.id, []), key=lambda c: c.slot)
            if candidates:
                yield source_group(workspace, source, candidates)
        batch.clear()

    for source in workspace.catalog.iter_sources():
        if wanted is not None and source.id not in wanted:
            continue
        batch.append(source)
        if len(batch) >= 64:
            yield from flush()
    yield from flush()


# ---- runs ---------------------------------------------------------------------------------------------


def run_groups(
    groups: Iterator[Group] | Sequence[Group],
    config: CheckConfig,
    total: int,
    on_records: Callable[[list[dict[str, Any]]], None],
    on_progress: ProgressFn | None = None,
    workers: int | None = None,
) -> None:
    """Check groups on a pool of threads (OpenCV and numpy release the GIL), a bounded number in flight;
    each group's records go to ``on_records`` in input order."""
    workers = workers or max(
        1, min(6, (os.cpu_count() or 1) + 1)
    )  # one more than cores: Python parts overlap
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # parallel across candidates, not inside each OpenCV call (they would contend)
    done = 0

    def finish(future: Future[list[dict[str, Any]]]) -> None:
        nonlocal done
        records = future.result()
        on_records(records)
        done += len(records)
        if on_progress:
            on_progress(done, total)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medgen-check") as pool:
            pending: deque[Future[list[dict[str, Any]]]] = deque()
            for group in groups:
                pending.append(pool.submit(check_group, group, config))
                if len(pending) >= 2 * workers:
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
    finally:
        cv2.setNumThreads(opencv_threads)


def check_workspace(
    workspace: Workspace,
    config: CheckConfig,
    source_ids: Sequence[str] | None = None,
    force: bool = False,
    on_progress: ProgressFn | None = None,
) -> CheckReport:
    """Check the workspace's candidates (those not yet checked with these settings, or all with ``force``),
    store the results in the catalog, and write the outputs of every selected candidate when asked."""
    settings = config.digest()
    report = CheckReport()
    groups = list(workspace_groups(workspace, source_ids))
    if not groups:
        raise MedgenError("no candidates to check: generate some first (`medgen generate`)")
    ids = [c[0] for g in groups for c in g.candidates]
    done = set() if force else set(tables.stored(workspace, ids, settings))
    todo = [g for g in groups if any(c[0] not in done for c in g.candidates)]
    # A group with anything new is measured whole (its siblings); the rest is reused (no list scan per group:
    # quadratic on a large workspace).
    report.reused = len(ids) - sum(len(g.candidates) for g in todo)

    def keep(records: list[dict[str, Any]]) -> None:
        tables.save(workspace, settings, records)
        report.checked += len(records)

    run_groups(iter(todo), config, sum(len(g.candidates) for g in todo), keep, on_progress)
    records = tables.stored(workspace, ids, settings)
    ordered = [records[i] for i in ids if i in records]
    _summarise(report, ordered, config)
    if config.output_dir:
        report.outputs = write_outputs(ordered, config)
    return report


def check_files(
    source: Path, candidates: Sequence[Path], config: CheckConfig
) -> tuple[list[dict[str, Any]], CheckReport]:
    """Check plain files; outputs written when ``config.output_dir`` is set."""
    group = files_group(source, candidates)
    records: list[dict[str, Any]] = []
    run_groups([group], config, len(candidates), records.extend)
    report = CheckReport(checked=len(records))
    _summarise(report, records, config)
    if config.output_dir:
        report.outputs = write_outputs(records, config)
    return records, report


def _summarise(report: CheckReport, records: Sequence[dict[str, Any]], config: CheckConfig) -> None:
    for record in records:
        tags = [f["tag"] for f in record["findings"]]
        report.with_findings += bool(tags)
        report.missing += missing(record["measured"], config)
        for tag in tags:
            report.tags[tag] = report.tags.get(tag, 0) + 1


# ---- outputs ------------------------------------------------------------------------------------------

CSV_VALUES = (*VALUE_NAMES, "scale_change")


def write_outputs(records: Sequence[dict[str, Any]], config: CheckConfig) -> dict[str, Path]:
    """``checks.jsonl``, ``checks.csv`` and ``index.html`` in ``config.output_dir``, written atomically."""
    from medgen.checks.sheet import write_sheet

    out = config.output_dir
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": out / "checks.jsonl", "csv": out / "checks.csv"}
    with ExitStack() as stack:
        temp = {k: p.with_name(p.name + ".tmp") for k, p in paths.items()}
        jsonl = stack.enter_context(temp["jsonl"].open("w"))
        table = stack.enter_context(temp["csv"].open("w", newline=""))
        writer = csv.writer(table)
        writer.writerow(["source", "candidate", "tags", *CSV_VALUES])
        for r in records:
            line = {k: r[k] for k in ("source", "candidate", "findings", "measured")}
            jsonl.write(json.dumps(line) + "\n")
            measured = r["measured"]
            writer.writerow(
                [r["source"], r["candidate"], ";".join(f["tag"] for f in r["findings"])]
                + ["" if measured.get(k) is None else measured[k] for k in CSV_VALUES]
            )
    for key, path in paths.items():
        os.replace(temp[key], path)
    paths["html"] = write_sheet(records, config)
    return paths


def drop_failing(workspace: Workspace, run_id: str, config: CheckConfig) -> dict[str, list[dict[str, Any]]]:
    """Check the sources a generation run added candidates to; move the run's candidates with a finding at
    least ``config.drop_confidence`` sure out of ``candidates`` (kept, with the reasons, in
    ``dropped_candidates``), so no annotator sees them and the next run makes their slots again. Returns
    the dropped candidates' ids with the findings that dropped them."""
    sources = tables.run_candidates(workspace, run_id)
    if not sources:
        return {}
    settings = config.digest()
    reasons: dict[str, list[dict[str, Any]]] = {}
    from_run = set(tables.run_candidate_ids(workspace, run_id))

    def keep(records: list[dict[str, Any]]) -> None:
        tables.save(workspace, settings, records)
        for record in records:
            sure = [f for f in record["findings"] if f["confidence"] >= config.drop_confidence]
            if sure and record["candidate"] in from_run:
                reasons[record["candidate"]] = sure

    groups = list(workspace_groups(workspace, sources))
    run_groups(iter(groups), config, sum(len(g.candidates) for g in groups), keep)
    tables.drop(workspace, reasons)
    return reasons
