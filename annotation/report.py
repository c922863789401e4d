"""The numbers of the annotation quality report (`medgen annotate report`), from the catalog alone.

One pass over every pulled answer, by source, from a cursor (memory follows the team and the paired votes,
packed to bits, not the answers themselves):

- per annotator: answers (valid, skipped, unusable, rejected by a review), time per task (Label Studio's
  ``lead_time``: median and quartiles), gold accuracy per candidate with a Wilson 95 % interval, agreement with
  the consensus per dimension (sources two or more people answered and that have one), review acceptance
  (reviewers' decisions; the gold check's are gold accuracy), pre-fills kept or changed;
- per dimension (and ``acceptable``): Krippendorff's alpha (nominal, units = candidates of sources two or more
  people answered) overall and per window of sources in the order they were first answered (drift), the
  agreement between each pair of annotators, and the tags most often confused (one person's tag against
  another's on the same candidate; "no defect" where one saw none).

``annotation.report_page`` draws it; the JSON holds the same numbers, each with its n.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from annotation.agreement import _alpha
from annotation.consensus import ADJUDICATION, consensus_of, labels_from_json, required_votes
from annotation.options import DEFAULT_MIN_AGREEMENT, GOLD_CHECK
from annotation.prefill import known_labels
from annotation.tables import report_rows, review_rows
from medgen.workspace import Workspace
from medgen.workspace.catalog import now
from schemas import LETTERS, TAXONOMY, CandidateLabel
from schemas.regions import hits

PARTS = (*TAXONOMY.dimension_ids(), "acceptable")
NO_DEFECT = "no defect"
WINDOWS = 8
"""Windows of the alpha-over-time curve (fewer when there are fewer than 50 paired sources per window)."""
TOP_CONFUSED = 8


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (None without observations)."""
    if n == 0:
        return None, None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _quartiles(values: array) -> dict[str, float | int | None]:
    import numpy as np

    if not len(values):
        return {"median": None, "q1": None, "q3": None, "n": 0}
    q1, median, q3 = np.percentile(np.frombuffer(values, dtype=np.float64), [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "n": len(values)}


Shape = tuple[tuple[str, ...], bool]
"""A candidate's answer as (defect tags, acceptable): what every comparison here reads."""


class _Shapes:
    """Per answer shape, built once and reused (a team gives a few hundred distinct ones): its tag set per
    dimension then ``acceptable`` (``parts``), and its five yes/no bits (``bits``)."""

    def __init__(self) -> None:
        self.dimension_of = {tag.id: d.id for d in TAXONOMY.dimensions for tag in d.tags}
        self.cache: dict[Shape, tuple[tuple[frozenset[str], ...], int]] = {}

    def get(self, shape: Shape) -> tuple[tuple[frozenset[str], ...], int]:
        found = self.cache.get(shape)
        if found is None:
            by_dim: dict[str, set[str]] = defaultdict(set)
            for tag in shape[0]:
                by_dim[self.dimension_of.get(tag, "")].add(tag)
            parts = (*(frozenset(by_dim.get(d, ())) for d in PARTS[:-1]), frozenset({str(shape[1])}))
            bits = sum(1 << j for j, d in enumerate(PARTS[:-1]) if by_dim.get(d)) | (
                int(shape[1]) << len(PARTS) - 1
            )
            found = self.cache[shape] = (parts, bits)
        return found


@dataclass
class _Person:
    statuses: Counter[str] = field(default_factory=Counter)
    lead_times: array = field(default_factory=lambda: array("d"))
    gold_hits: int = 0
    gold_candidates: int = 0
    gold_tasks: int = 0
    region_hits: int = 0  # true regions of tags they gave that a region of theirs found (IoU 0.5, pointing)
    region_marked: int = 0  # of those true regions, how many they marked at all
    region_truths: int = 0  # true regions of the tags they gave on gold tasks
    consensus_hits: Counter[str] = field(default_factory=Counter)
    consensus_n: int = 0
    prefill: Counter[str] = field(default_factory=Counter)


class Collector:
    """Takes one source's answer rows at a time (``add``) and keeps what the report needs."""

    def __init__(self, workspace: Workspace, min_agreement: float) -> None:
        self.workspace = workspace
        self.min_agreement = min_agreement
        self.needed = required_votes(workspace)
        self.shapes = _Shapes()
        self.people: dict[str, _Person] = defaultdict(_Person)
        self.index: dict[str, int] = {}
        self.vote_annotator, self.vote_source = array("i"), array("i")
        self.vote_bits = array("Q")  # 5 bits per candidate, candidate A lowest
        self.first_seen: list[str] = []
        self.confused: dict[str, Counter[tuple[str, str]]] = {p: Counter() for p in PARTS[:-1]}
        self.gold: list[tuple[str, str, tuple[CandidateLabel, ...]]] = []  # latest valid gold answers
        self.sources = self.answers = 0

    def add(self, source_id: str, rows: list[Any]) -> None:
        self.sources += 1
        latest: dict[str, Any] = {}
        adjudicated = None
        for row in rows:
            if row["kind"] == ADJUDICATION:
                if row["status"] == "valid":
                    adjudicated = row
                continue
            self.answers += 1
            person = self.people[row["annotator"]]
            person.statuses[row["status"]] += 1
            if row["status"] == "valid":
                latest[row["annotator"]] = row
                if row["lead_time_s"] is not None:
                    person.lead_times.append(float(row["lead_time_s"]))
        if not latest:
            return
        votes = {name: labels_from_json(row["labels"]) for name, row in latest.items()}
        if any(row["is_gold"] for row in rows):
            self.gold += [(name, source_id, labels) for name, labels in votes.items()]
        if rows[0]["prefill"]:
            self._prefill(labels_from_json(rows[0]["prefill"]), votes)
        if len(votes) >= 2:
            judged = labels_from_json(adjudicated["labels"]) if adjudicated is not None else None
            self._paired(source_id, latest, votes, judged)

    def _prefill(
        self, before: tuple[CandidateLabel, ...], votes: dict[str, tuple[CandidateLabel, ...]]
    ) -> None:
        for name, labels in votes.items():
            kept = sum(
                a.acceptable == b.acceptable and a.defects == b.defects
                for a, b in zip(before, labels, strict=True)
            )
            self.people[name].prefill["kept"] += kept
            self.people[name].prefill["changed"] += len(labels) - kept

    def _paired(
        self,
        source_id: str,
        latest: dict[str, Any],
        votes: dict[str, tuple[CandidateLabel, ...]],
        adjudicated: tuple[CandidateLabel, ...] | None,
    ) -> None:
        source = len(self.first_seen)
        self.first_seen.append(min(str(row["created_at"] or "") for row in latest.values()))
        parts = {}
        for name, labels in sorted(votes.items()):
            shaped = [self.shapes.get((label.defects, label.acceptable)) for label in labels]
            parts[name] = [p for p, _ in shaped]
            self.vote_annotator.append(self.index.setdefault(name, len(self.index)))
            self.vote_source.append(source)
            self.vote_bits.append(sum(bits << (len(PARTS) * i) for i, (_, bits) in enumerate(shaped)))
        for a, b in itertools.combinations(parts.values(), 2):
            for ca, cb in zip(a, b, strict=True):
                if ca != cb:
                    self._confusion(ca, cb)
        consensus, _ = consensus_of(
            source_id, votes, adjudicated, self.needed.get(source_id, 1), self.min_agreement
        )
        if consensus is None:
            return
        agreed = [self.shapes.get((label.defects, label.acceptable))[0] for label in consensus.labels]
        for name, candidates in parts.items():
            person = self.people[name]
            person.consensus_n += len(LETTERS)
            for mine, theirs in zip(candidates, agreed, strict=True):
                for j, part in enumerate(PARTS):
                    person.consensus_hits[part] += mine[j] == theirs[j]

    def _confusion(self, a: tuple[frozenset[str], ...], b: tuple[frozenset[str], ...]) -> None:
        """Count the tags two people gave one candidate where they differ, per dimension ("no defect" for none)."""
        for j, part in enumerate(PARTS[:-1]):
            if a[j] != b[j]:
                for x in sorted(a[j] - b[j]) or [NO_DEFECT]:
                    for y in sorted(b[j] - a[j]) or [NO_DEFECT]:
                        self.confused[part][(min(x, y), max(x, y))] += 1


def _votes_matrix(collector: Collector) -> Any:
    """(annotators, paired sources, candidates, parts) int8: 1 / 0 per vote, -1 where that person did not answer."""
    import numpy as np

    shape = (len(collector.index), len(collector.first_seen), len(LETTERS), len(PARTS))
    dense = np.full(shape, -1, dtype=np.int8)
    if len(collector.vote_source):
        values = np.frombuffer(collector.vote_bits, dtype=np.uint64)
        shifts = np.arange(len(LETTERS) * len(PARTS), dtype=np.uint64)
        bits = (
            ((values[:, None] >> shifts) & np.uint64(1)).astype(np.int8).reshape(-1, len(LETTERS), len(PARTS))
        )
        annotators = np.frombuffer(collector.vote_annotator, dtype=np.int32)
        sources = np.frombuffer(collector.vote_source, dtype=np.int32)
        dense[annotators, sources] = bits
    return dense


def _alpha_of(dense: Any, part: int, sources: Any = None) -> tuple[float | None, int]:
    """Alpha of one part over ``sources`` (all paired sources when None), and the units it pairs."""
    import numpy as np

    chosen = (
        dense[:, :, :, part] if sources is None else dense[:, sources][:, :, :, part]
    )  # people, sources, 4
    if chosen.size == 0:
        return None, 0
    matrix = chosen.reshape(chosen.shape[0], -1).astype(np.float64)
    matrix[matrix < 0] = np.nan
    pairable = int((np.sum(~np.isnan(matrix), axis=0) >= 2).sum())
    return _alpha(matrix), pairable


def dimension_numbers(collector: Collector, names: list[str]) -> dict[str, Any]:
    """Per part: alpha overall and per window in first-answered order, pairwise agreement, confused tags."""
    import numpy as np

    dense = _votes_matrix(collector)
    order = (
        np.argsort(np.array(collector.first_seen, dtype=object), kind="stable")
        if collector.first_seen
        else []
    )
    windows = max(1, min(WINDOWS, len(order) // 50))
    chunks = np.array_split(np.asarray(order, dtype=np.int64), windows) if len(order) else []
    rows = [collector.index[name] for name in names if name in collector.index]
    found: dict[str, Any] = {}
    for j, part in enumerate(PARTS):
        alpha, units = _alpha_of(dense, j)
        drift = []
        for chunk in chunks:
            value, n = _alpha_of(dense, j, chunk)
            times = [collector.first_seen[i] for i in chunk]
            drift.append(
                {"from": min(times), "to": max(times), "alpha": value, "units": n, "sources": len(chunk)}
            )
        agree = np.full((len(rows), len(rows)), np.nan)
        pairs = np.zeros((len(rows), len(rows)), dtype=np.int64)
        for a, b in itertools.permutations(range(len(rows)), 2):
            x, y = dense[rows[a], :, :, j], dense[rows[b], :, :, j]
            both = (x >= 0) & (y >= 0)
            pairs[a, b] = int(both.sum())
            if pairs[a, b]:
                agree[a, b] = float((x[both] == y[both]).mean())
        confused = collector.confused.get(part, Counter()).most_common(TOP_CONFUSED)
        found[part] = {
            "alpha": alpha,
            "units": units,
            "alpha_over_time": drift,
            "pairwise": {
                "annotators": [name for name in names if name in collector.index],
                "agreement": [[None if math.isnan(v) else v for v in row] for row in agree.tolist()],
                "n": pairs.tolist(),
            },
            "confused": [{"tags": list(pair), "count": n} for pair, n in confused],
        }
    return found


def _gold(workspace: Workspace, collector: Collector) -> None:
    sources = sorted({source for _, source, _ in collector.gold})
    candidates = workspace.catalog.candidates_by_source(sources) if sources else {}
    for name, source, labels in collector.gold:
        truth = known_labels(candidates.get(source, []))
        if truth is None:
            continue
        person = collector.people[name]
        person.gold_tasks += 1
        for given, known in zip(labels, truth, strict=True):
            person.gold_candidates += 1
            person.gold_hits += given.acceptable == known.acceptable and given.defects == known.defects
            for true in known.regions:  # where: scored on the tags they got right
                if true.tag in given.defects:
                    theirs = [region for region in given.regions if region.tag == true.tag]
                    person.region_truths += 1
                    person.region_marked += bool(theirs)
                    person.region_hits += any(hits(region, true) for region in theirs)


def _reviews(workspace: Workspace) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for row in review_rows(workspace):
        if row["reviewer"] != GOLD_CHECK:
            found[row["annotator"]][row["decision"] or "waiting"] += 1
    return found


def person_numbers(name: str, person: _Person, reviews: Counter[str]) -> dict[str, Any]:
    low, high = wilson(person.gold_hits, person.gold_candidates)
    decided = reviews["accepted"] + reviews["rejected"]
    changed = person.prefill["changed"]
    prefilled = person.prefill["kept"] + changed
    unusable = sum(n for s, n in person.statuses.items() if s not in ("valid", "cancelled", "rejected"))
    return {
        "answers": sum(person.statuses.values()),
        "valid": person.statuses["valid"],
        "skipped": person.statuses["cancelled"],
        "rejected": person.statuses["rejected"],
        "unusable": unusable,
        "lead_time_s": _quartiles(person.lead_times),
        "gold": {
            "accuracy": person.gold_hits / person.gold_candidates if person.gold_candidates else None,
            "ci_low": low,
            "ci_high": high,
            "candidates": person.gold_candidates,
            "tasks": person.gold_tasks,
        },
        "gold_regions": {
            "hit_rate": person.region_hits / person.region_marked if person.region_marked else None,
            "ci": wilson(person.region_hits, person.region_marked),
            "marked": person.region_marked,
            "n": person.region_truths,
        },
        "agreement_with_consensus": {
            part: {
                "rate": person.consensus_hits[part] / person.consensus_n if person.consensus_n else None,
                "n": person.consensus_n,
            }
            for part in PARTS
        },
        "review": {
            "accepted": reviews["accepted"],
            "rejected": reviews["rejected"],
            "waiting": reviews["waiting"],
            "acceptance": reviews["accepted"] / decided if decided else None,
        },
        "prefill": {"kept": person.prefill["kept"] / prefilled if prefilled else None, "n": prefilled},
    }


def report_numbers(workspace: Workspace, min_agreement: float = DEFAULT_MIN_AGREEMENT) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready numbers (module docstring)."""
    collector = Collector(workspace, min_agreement)
    for source_id, rows in itertools.groupby(report_rows(workspace), key=lambda row: row["source_id"]):
        collector.add(source_id, list(rows))
    _gold(workspace, collector)
    reviews = _reviews(workspace)
    names = sorted(collector.people)
    return {
        "generated_at": now(),
        "workspace": str(workspace.root),
        "totals": {
            "sources": collector.sources,
            "answers": collector.answers,
            "annotators": len(names),
            "paired_sources": len(collector.first_seen),
            "gold_answers": len(collector.gold),
            "reviewed": sum(sum(c.values()) for c in reviews.values()),
        },
        "min_agreement": min_agreement,
        "annotators": {name: person_numbers(name, collector.people[name], reviews[name]) for name in names},
        "dimensions": dimension_numbers(collector, names),
    }
