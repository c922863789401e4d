"""Generation orchestration, shared by every backend: plan, shard, generate, store, merge.

One run::

    plan      every (source, slot) without a candidate, sources sorted by id (--sources, --limit)
    shard     source i goes to rank i % world_size (torchrun / accelerate launch; 1 rank otherwise)
    generate  backend.generate(batch) -> images; a failing source is recorded and the run goes on
    store     image files first (atomic, content-addressed, not yet flushed), then a line in
              runs/<run>/rank-<r>.jsonl
    sync      once the shard is done, one ``syncfs`` makes its files durable (not one fsync each)
    merge     rank 0 inserts the manifests' rows into the catalog: INSERT OR IGNORE on (source, slot)

Crash safety, and why one flush per run: ``medgen.generation.manifest``.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel

from medgen.errors import MedgenError, one_line
from medgen.files import atomic_write_text, read_ahead
from medgen.generation.backends.base import (
    Backend,
    GeneratedImage,
    GenerationAborted,
    GenerationRequest,
    candidate_seed,
)
from medgen.generation.config import GenerationConfig, dump_config
from medgen.generation.distributed import ranks
from medgen.generation.examples import write_defect_examples
from medgen.generation.manifest import ManifestWriter, manifest_path, merge_manifests, recover_interrupted
from medgen.generation.plan import Plan, plan
from medgen.generation.tables import end_run, start_run
from medgen.workspace import Workspace
from medgen.workspace.store import png_bytes_many
from schemas import Candidate, SourceImage
from schemas.taxonomy import NUM_CANDIDATES

ProgressFn = Callable[[int, int], None]
"""Called as ``on_progress(images_done, images_total)`` for this rank."""


STORE_QUEUE = 2  # generated batches waiting to be stored, at most (memory: a few images each)


@dataclass
class GenerationReport:
    """What one rank's run did; rank 0's also counts the merge and lists every rank's failures."""

    run_id: str
    rank: int = 0
    world_size: int = 1
    sources_planned: int = 0
    images_planned: int = 0
    images_generated: int = 0
    rows_merged: int = 0
    rows_recovered: int = 0
    orphans_removed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source id, one-line error)
    dropped: list[tuple[str, list[dict[str, Any]]]] = field(
        default_factory=list
    )  # --drop-failing: (id, findings)
    runs: list[str] = field(default_factory=list)  # every run this call made (retries of dropped slots)
    seconds: float = 0.0
    report_path: Path | None = None

    @property
    def images_per_s(self) -> float:
        return self.images_generated / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "rank": self.rank,
            "world_size": self.world_size,
            "sources_planned": self.sources_planned,
            "images_planned": self.images_planned,
            "images_generated": self.images_generated,
            "rows_merged": self.rows_merged,
            "rows_recovered": self.rows_recovered,
            "orphans_removed": self.orphans_removed,
            "failures": len(self.failures),
            "dropped": len(self.dropped),
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 3),
        }


# ---------------------------------------------------------------------------------------- run --


def _requests(
    workspace: Workspace, shard: Plan, base_seed: int, batch_size: int
) -> Iterator[list[GenerationRequest]]:
    """Batches of requests; each source's pixels are decoded on a thread while the one before is generated.

    The files of the next sources are read ahead (``read_ahead``): on a cold disk one read at a time
    made generation wait on it once the sources no longer fit in a cache.
    """
    batch: list[GenerationRequest] = []
    store = workspace.store
    sources = read_ahead(
        _shard_sources(workspace, shard),
        lambda item: (store.path(item[0].image_key), store.path(item[0].mask_key)),
    )
    with closing(sources), ThreadPoolExecutor(max_workers=1, thread_name_prefix="medgen-load") as loader:
        current: tuple[SourceImage, Sequence[int], Future[tuple[Image.Image, Image.Image]]] | None = None
        for item in itertools.chain(sources, [None]):  # one source ahead: memory stays at two sources
            ahead = None if item is None else (*item, loader.submit(load_source_pixels, workspace, item[0]))
            if current is not None:
                image, mask = current[2].result()
                yield from _source_batches(current[0], image, mask, current[1], base_seed, batch_size, batch)
            current = ahead
    if batch:
        yield batch


def _shard_sources(workspace: Workspace, shard: Plan) -> Iterator[tuple[SourceImage, Sequence[int]]]:
    """The shard's sources with their missing slots, in its order; read from the catalog 256 at a time."""
    for start in range(0, len(shard), 256):
        part = shard[start : start + 256]
        found = workspace.catalog.sources_by_id([source_id for source_id, _ in part])
        for source_id, slots in part:
            yield found[source_id], slots


def _source_batches(
    source: SourceImage,
    image: Image.Image,
    mask: Image.Image,
    slots: Sequence[int],
    base_seed: int,
    batch_size: int,
    batch: list[GenerationRequest],
) -> Iterator[list[GenerationRequest]]:
    """Add one source's requests to ``batch``, yielding (and emptying) it each time it is full."""
    for slot in slots:
        batch.append(
            GenerationRequest(
                source, image, mask, slot, candidate_seed(base_seed, source.id, slot), base_seed
            )
        )
        if len(batch) == batch_size:
            yield list(batch)
            batch.clear()


def _generate_isolating(
    backend: Backend, batch: list[GenerationRequest], on_failure: Callable[[str, BaseException], None]
) -> list[GeneratedImage]:
    """Run one batch; when it fails, retry source by source so only the failing sources are lost."""
    try:
        return _checked(backend, batch)
    except GenerationAborted:
        raise
    except Exception as error:
        by_source: dict[str, list[GenerationRequest]] = {}
        for request in batch:
            by_source.setdefault(request.source.id, []).append(request)
        if len(by_source) == 1:
            on_failure(batch[0].source.id, error)
            return []
    results: list[GeneratedImage] = []
    for source_id, requests in by_source.items():
        try:
            results.extend(_checked(backend, requests))
        except GenerationAborted:
            raise
        except Exception as error:
            on_failure(source_id, error)
    return results


def _checked(backend: Backend, requests: list[GenerationRequest]) -> list[GeneratedImage]:
    results = backend.generate(requests)
    if len(results) != len(requests):
        raise GenerationAborted(
            f"backend {backend.name!r} returned {len(results)} images for {len(requests)} requests"
        )
    return results


def _config_json(backend: Backend, config: BaseModel | dict[str, Any] | None, **run: Any) -> str:
    body = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
    return json.dumps({"backend": backend.name, **body, "run": run}, sort_keys=True)


def run_generation(
    workspace: Workspace,
    backend: Backend,
    *,
    candidates: int = NUM_CANDIDATES,
    base_seed: int = 0,
    source_ids: list[str] | None = None,
    limit: int | None = None,
    batch_size: int = 4,
    on_progress: ProgressFn | None = None,
    config: BaseModel | dict[str, Any] | None = None,
    todo: Plan | None = None,
) -> GenerationReport:
    """Make the missing candidates of this rank's shard and merge every rank's rows into the catalog.

    Args:
        workspace: the workspace to read sources from and write candidates to.
        backend: turns ``GenerationRequest`` batches into images (``diffusers`` or ``synthetic``).
        candidates: candidates per source (slots ``0..candidates-1``).
        base_seed: seed every candidate's seed derives from (``candidate_seed``).
        source_ids: only these sources (ids, id prefixes or file names).
        limit: at most this many sources (of those still missing candidates), across all ranks.
        batch_size: requests per ``backend.generate`` call.
        on_progress: ``(done, total)`` images of this rank.
        config: the resolved config to record with the run (a pydantic model or a dict).
        todo: the plan when the caller made it, on every rank, after recovering dead runs (``generate``);
            None: recover and plan here.
    """
    if batch_size < 1:
        raise MedgenError(f"--batch-size must be at least 1, got {batch_size}")
    dist = ranks()
    started = time.perf_counter()
    report = GenerationReport(run_id="", rank=dist.rank, world_size=dist.world_size)
    if todo is None:
        plan(workspace, candidates, source_ids, limit)  # bad arguments fail here, on every rank alike
        if dist.is_main:
            report.rows_recovered, report.orphans_removed = recover_interrupted(workspace)
    report.run_id = run_id = dist.broadcast(
        datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    )
    if dist.is_main:
        settings = dict(candidates=candidates, base_seed=base_seed, source_ids=source_ids, limit=limit)
        settings.update(batch_size=batch_size, world_size=dist.world_size)
        _record_run(workspace, run_id, backend, config, settings)
    # Rank 0 plans after recovering and sends the plan: every rank shards the same list, and the
    # other ranks (maybe on other nodes) never need the catalog's current state.
    if todo is None:
        todo = dist.broadcast(plan(workspace, candidates, source_ids, limit) if dist.is_main else None)
    shard = todo.shard(dist.rank, dist.world_size)
    report.sources_planned = len(shard)
    report.images_planned = shard.images
    manifest = ManifestWriter(manifest_path(workspace, run_id, dist.rank))
    try:
        _produce(workspace, backend, shard, base_seed, batch_size, manifest, report, on_progress)
        workspace.store.sync()  # this rank's files, durable before any rank merges their rows
    except BaseException as error:
        try:
            workspace.store.sync()  # what was made, durable before its rows go in
        finally:
            manifest.close()
        report.seconds = time.perf_counter() - started
        if dist.is_main:  # keep what was made; other ranks' manifests are merged by the next run
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            _finish(workspace, report, [manifest.path], status)
        raise
    manifest.close()
    report.seconds = time.perf_counter() - started
    dist.barrier()
    if dist.is_main:
        paths = [manifest_path(workspace, run_id, r) for r in range(dist.world_size)]
        _finish(workspace, report, [p for p in paths if p.exists()], "finished")
    dist.barrier()
    return report


def _record_run(
    workspace: Workspace,
    run_id: str,
    backend: Backend,
    config: BaseModel | dict[str, Any] | None,
    settings: dict[str, Any],
) -> None:
    """The run's folder with its resolved config (reproducible from ``config.yaml`` alone), and its catalog row."""
    run_dir = workspace.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    body = _config_json(backend, config, **settings)
    atomic_write_text(run_dir / "config.json", json.dumps(json.loads(body), indent=2) + "\n")
    if isinstance(config, GenerationConfig):  # `medgen generate --config runs/<id>/config.yaml`
        atomic_write_text(run_dir / "config.yaml", dump_config(config))
    start_run(workspace, run_id, backend.name, body)


def _produce(
    workspace: Workspace,
    backend: Backend,
    shard: Plan,
    base_seed: int,
    batch_size: int,
    manifest: ManifestWriter,
    report: GenerationReport,
    on_progress: ProgressFn | None,
) -> None:
    """Generate this rank's shard batch by batch; failures are recorded per source, the run goes on.

    A writer thread stores batches (files, manifest lines) while the backend makes the next ones, their
    PNGs encoded on a pool of threads (libdeflate releases the GIL); at most STORE_QUEUE batches wait,
    and returning waits for them.
    """

    def on_failure(source_id: str, error: BaseException) -> None:
        message = one_line(error, kind=True)
        report.failures.append((source_id, message))
        manifest.write(
            kind="failure", source_id=source_id, error=message, at=datetime.now(timezone.utc).isoformat()
        )

    done, total = 0, shard.images
    if on_progress:
        on_progress(0, total)
    encoders = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="medgen-png")
    with encoders, ThreadPoolExecutor(max_workers=1, thread_name_prefix="medgen-store") as writer:
        queued: deque[Future[None]] = deque()
        for batch in _requests(workspace, shard, base_seed, batch_size):
            results = _generate_isolating(backend, batch, on_failure)
            while len(queued) >= STORE_QUEUE:
                queued.popleft().result()
            queued.append(writer.submit(_store, workspace, manifest, results, encoders))
            report.images_generated += len(results)
            done += len(batch)
            if on_progress:
                on_progress(done, total)
        while queued:
            queued.popleft().result()


def _store(
    workspace: Workspace,
    manifest: ManifestWriter,
    results: list[GeneratedImage],
    encoders: Executor | None = None,
) -> None:
    """Files first (announced as pending; flushed once, at the end of the run), then their candidate lines."""
    rgb = [r.image if r.image.mode == "RGB" else r.image.convert("RGB") for r in results]
    images = png_bytes_many(rgb, encoders)
    encoded = list(zip(results, images, strict=True))
    keys = [workspace.store.key_of(data) for _, data in encoded]
    for key in keys:
        manifest.write(kind="pending", key=key)
    for (result, data), key in zip(encoded, keys, strict=True):
        workspace.store.put_bytes(data, durable=False)
        request = result.request
        candidate = Candidate(
            id=f"{request.source.id}-{request.slot}",
            source_id=request.source.id,
            slot=request.slot,
            image_key=key,
            provenance=result.provenance,
            injected_defects=result.injected_defects,
            injected_regions=result.injected_regions,
        )
        manifest.write(kind="candidate", candidate=candidate.model_dump(mode="json"))
    manifest.sync()


def _finish(workspace: Workspace, report: GenerationReport, manifests: list[Path], status: str) -> None:
    """Merge manifests into the catalog, close the run row, write the run report (rank 0 only)."""
    added, all_failures = merge_manifests(workspace, manifests)
    report.rows_merged += added
    report.failures = [(f["source_id"], f["error"]) for f in all_failures]  # rank 0 reports the whole run
    if status == "finished" and all_failures:
        status = "finished_with_failures"
    end_run(workspace, report.run_id, status)
    path = workspace.reports_dir / f"generate-{report.run_id}.json"
    body = {
        "summary": report.summary(),
        "status": status,
        "failures": [{"source_id": f["source_id"], "error": f["error"]} for f in all_failures],
    }
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    report.report_path = path


def _drop_and_retry(
    workspace: Workspace,
    config: GenerationConfig,
    report: GenerationReport,
    run: Callable[[int, list[str] | None, Plan], GenerationReport],
) -> None:
    """Check the run's candidates, drop the clearly broken ones, make their slots again with other seeds."""
    from medgen.checks.check import drop_failing
    from medgen.checks.config import CheckConfig
    from medgen.checks.tables import sources_of_dropped

    checks = CheckConfig()
    for attempt in range(config.drop_retries + 1):
        dropped = drop_failing(workspace, report.runs[-1], checks)
        report.dropped += list(dropped.items())
        if not dropped or attempt == config.drop_retries:
            return
        sources = sources_of_dropped(workspace, list(dropped))
        todo = plan(workspace, config.candidates, sources)
        if not todo:
            return
        retry = run(config.seed + RETRY_SEED_STEP * (attempt + 1), sources, todo)  # other seeds: other images
        report.runs.append(retry.run_id)
        report.images_generated += retry.images_generated
        report.rows_merged += retry.rows_merged
        report.failures += retry.failures
        report.seconds += retry.seconds


RETRY_SEED_STEP = 1_000_003
"""A dropped slot's next try uses base seed + step x attempt (recorded in that run's config)."""


def load_source_pixels(workspace: Workspace, source: SourceImage) -> tuple[Image.Image, Image.Image]:
    """A source's RGB image and L-mode product mask (255 = product)."""
    return workspace.store.open(source.image_key).convert("RGB"), workspace.store.open(
        source.mask_key
    ).convert("L")


# ---------------------------------------------------------------------------------- from config --


def load_backend(config: GenerationConfig) -> Backend:
    """The backend ``config`` names, ready to generate (for diffusers: the model loaded on this rank's device)."""
    if config.backend == "synthetic":
        from medgen.generation.backends.synthetic import SyntheticBackend

        return SyntheticBackend(config.synthetic)
    from medgen.generation.backends.diffusers_backend import DiffusersBackend

    return DiffusersBackend(config)


def generate(
    workspace: Workspace,
    config: GenerationConfig,
    *,
    source_ids: list[str] | None = None,
    limit: int | None = None,
    on_progress: ProgressFn | None = None,
) -> GenerationReport:
    """``medgen generate``: recover dead runs, then, only if candidates are missing, load the backend and run."""
    dist = ranks()
    plan(workspace, config.candidates, source_ids, limit)  # bad arguments fail before any model loads
    recovered = removed = 0
    if dist.is_main:
        recovered, removed = recover_interrupted(workspace)
        write_defect_examples(workspace.guideline_dir)  # for the annotators' guideline; once
    todo = dist.broadcast(plan(workspace, config.candidates, source_ids, limit) if dist.is_main else None)
    if not todo:
        return GenerationReport(
            run_id="",
            rank=dist.rank,
            world_size=dist.world_size,
            rows_recovered=recovered,
            orphans_removed=removed,
        )
    if config.drop_failing and dist.world_size > 1:
        raise MedgenError(
            "--drop-failing runs in one process (it checks the whole run's candidates): generate without it on "
            "several, then `medgen check` the workspace"
        )
    backend = load_backend(config)

    def run(base_seed: int, sources: list[str] | None, todo: Plan) -> GenerationReport:
        return run_generation(
            workspace,
            backend,
            candidates=config.candidates,
            base_seed=base_seed,
            source_ids=sources,
            limit=limit if sources is source_ids else None,
            batch_size=config.batch_size,
            on_progress=on_progress,
            config=config,
            todo=todo,
        )

    report = run(config.seed, source_ids, todo)
    report.runs.append(report.run_id)
    if config.drop_failing:
        _drop_and_retry(workspace, config, report, run)
    report.rows_recovered += recovered
    report.orphans_removed += removed
    return report
