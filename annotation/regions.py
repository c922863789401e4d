"""Several annotators' regions for one defect merged into the consensus regions, with their agreement.

Per candidate and per consensus tag, the regions the annotators drew for that tag are clustered: two boxes
are the same place when their IoU reaches ``HIT_IOU`` (0.5), two points when they lie within
``POINT_RADIUS`` of each other, linked transitively. A cluster becomes one region whose box is the
coordinate-wise median of its members', with ``agreed`` (people in the cluster) of ``of`` (people who marked
that tag on that candidate) and their names. Clusters that at least half of those people support are kept:
one place everyone saw stays one region; two places half saw each stay two, each saying 1 of 2.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

from schemas import CandidateLabel
from schemas.regions import Region, hits


def same_place(a: Region, b: Region) -> bool:
    """Two annotators marked the same place: two boxes one of which finds the other (IoU at least 0.5), or two
    points close together (``schemas.regions.hits``); a box and a point never are."""
    return a.is_point == b.is_point and hits(a, b)


def merge(tag: str, marks: list[tuple[str, Region]]) -> list[Region]:
    """One tag's regions on one candidate, (annotator, region) each, merged into consensus regions."""
    people = sorted({name for name, _ in marks})
    parent = list(range(len(marks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(marks)):
        for j in range(i + 1, len(marks)):
            if same_place(marks[i][1], marks[j][1]):
                parent[root(j)] = root(i)
    clusters: dict[int, list[tuple[str, Region]]] = {}
    for i, mark in enumerate(marks):
        clusters.setdefault(root(i), []).append(mark)
    merged = []
    for members in clusters.values():
        names = tuple(sorted({name for name, _ in members}))
        if 2 * len(names) < len(people):
            continue
        box = tuple(statistics.median(region.box[k] for _, region in members) for k in range(4))
        merged.append(Region(tag=tag, box=box, agreed=len(names), of=len(people), annotators=names))  # type: ignore[arg-type]
    return sorted(merged, key=lambda region: (-region.agreed, region.box))


def merge_regions(
    votes: Mapping[str, tuple[CandidateLabel, ...]], labels: tuple[CandidateLabel, ...]
) -> tuple[CandidateLabel, ...]:
    """The consensus labels with each consensus tag's regions merged from the votes.

    A label that already has regions (an adjudicator drew them) keeps its own; a vote's region for a tag
    the consensus did not keep is left out with its tag.
    """
    if not any(label.regions for vote in votes.values() for label in vote):
        return labels
    merged = []
    for i, label in enumerate(labels):
        if label.regions or not label.defects:
            merged.append(label)
            continue
        regions = [region for tag in label.defects for region in merge(tag, list(_marks(votes, i, tag)))]
        merged.append(label.model_copy(update={"regions": tuple(regions)}) if regions else label)
    return tuple(merged)


def _marks(votes: Mapping[str, tuple[CandidateLabel, ...]], i: int, tag: str) -> Iterable[tuple[str, Region]]:
    for name, vote in votes.items():
        for region in vote[i].regions:
            if region.tag == tag:
                yield name, region
