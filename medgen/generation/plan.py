"""What a run makes: every source's missing candidate slots, the same on every rank, held in two arrays."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from medgen.errors import MedgenError
from medgen.generation.tables import missing_slots
from medgen.workspace import Workspace
from schemas.taxonomy import NUM_CANDIDATES


def resolve_sources(sources: Sequence[Any], wanted: list[str]) -> list[str]:
    """Ids of the sources named by id, unique id prefix (>= 6 characters) or original file name.

    ``sources``: anything with ``id`` and ``original_name`` (``SourceImage``, or the catalog's rows).
    """
    chosen: set[str] = set()
    for name in wanted:
        matches = [s for s in sources if s.id == name or s.original_name == name]
        if not matches and len(name) >= 6:
            matches = [s for s in sources if s.id.startswith(name)]
        if not matches:
            raise MedgenError(
                f"--sources: no source with id, id prefix or file name {name!r} (see `medgen sources list`)"
            )
        if len({s.id for s in matches}) > 1:
            raise MedgenError(f"--sources: {name!r} matches {len(matches)} sources: give more of the id")
        chosen.add(matches[0].id)
    return sorted(chosen)


class _Named(NamedTuple):
    id: str
    original_name: str


class Plan:
    """Source ids (sorted) with their missing slots, in two arrays, not a list of Python objects.

    A list of ``(id, [slots])`` grew generate's peak memory with the workspace (benchmarks/README.md,
    "Scale"). Iterating yields ``(source id, slots)``; slicing gives a plan (views, no copy).
    """

    CHUNK = 4096

    def __init__(self, ids: np.ndarray[Any, Any], missing: np.ndarray[Any, Any]):
        self.ids = ids  # ASCII bytes (dtype S<widest id>)
        self.missing = missing  # uint8: bit s set = slot s is missing

    @classmethod
    def of(cls, rows: Iterator[tuple[str, int]], capacity: int = 0, width: int = 1) -> Plan:
        """The plan of ``rows`` (id, missing mask); ``capacity`` and ``width`` (of the ids) size the arrays once.

        Filled in place, a chunk of rows at a time: concatenating chunks would briefly hold the ids twice.
        """
        ids = np.empty(capacity, dtype=f"S{max(width, 1)}")
        missing = np.empty(capacity, dtype=np.uint8)
        size = 0
        while chunk := list(itertools.islice(rows, cls.CHUNK)):
            encoded = [source_id.encode("ascii") for source_id, _ in chunk]
            widest = max(len(source_id) for source_id in encoded)
            if widest > ids.dtype.itemsize:  # sources added since the arrays were sized: never truncate
                ids = ids.astype(f"S{widest}")
            if size + len(chunk) > len(ids):
                ids = np.concatenate([ids, np.empty(size + len(chunk), dtype=ids.dtype)])
                missing = np.concatenate([missing, np.empty(size + len(chunk), dtype=np.uint8)])
            ids[size : size + len(chunk)] = encoded
            missing[size : size + len(chunk)] = [mask for _, mask in chunk]
            size += len(chunk)
        return cls(ids[:size], missing[:size])

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        for start in range(0, len(self.ids), self.CHUNK):
            ids = self.ids[start : start + self.CHUNK].tolist()
            masks = self.missing[start : start + self.CHUNK].tolist()
            for source_id, mask in zip(ids, masks, strict=True):
                yield source_id.decode("ascii"), _SLOTS[mask]

    def __getitem__(self, part: slice) -> Plan:
        return Plan(self.ids[part], self.missing[part])

    def shard(self, rank: int, world_size: int) -> Plan:
        """Every ``world_size``-th source from ``rank`` on: this rank's share."""
        return self[rank::world_size]

    @property
    def images(self) -> int:
        return int(np.bitwise_count(self.missing).sum())


_SLOTS = [tuple(slot for slot in range(8) if mask >> slot & 1) for mask in range(256)]  # mask -> slots


def plan(
    workspace: Workspace,
    candidates: int = NUM_CANDIDATES,
    source_ids: list[str] | None = None,
    limit: int | None = None,
) -> Plan:
    """Every source id (sorted) with its missing slots; the same answer on every rank.

    Ids and slot masks only, computed in SQL and read from a cursor: no row object is held.
    """
    if not 1 <= candidates <= NUM_CANDIDATES:
        raise MedgenError(f"--candidates must be between 1 and {NUM_CANDIDATES}, got {candidates}")
    if limit is not None and limit < 1:
        raise MedgenError(f"--limit must be at least 1, got {limit}")
    if not workspace.catalog.count("sources"):
        raise MedgenError("the workspace has no sources yet: add photos with `medgen sources add PATH...`")
    wanted: set[str] | None = None
    if source_ids:
        named = [_Named(source_id, name) for source_id, name in workspace.catalog.source_names()]
        wanted = set(resolve_sources(named, source_ids))
    # Arrays sized once (np.empty: pages untouched by ids never filled cost no memory).
    capacity, width, rows = missing_slots(workspace, candidates)
    full = (1 << candidates) - 1
    todo = ((source_id, full & ~filled) for source_id, filled in rows)
    if wanted is not None:
        todo = ((source_id, mask) for source_id, mask in todo if source_id in wanted)
    return Plan.of(itertools.islice(todo, limit), min(capacity, limit or capacity), width)
