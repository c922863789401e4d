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
import json
import math
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from annotation.agreement import _alpha
from annotation.consensus import ADJUDICATION, labels_from_json, required_votes, source_consensus
from annotation.options import DEFAULT_MIN_AGREEMENT
from annotation.prefill import known_labels
from annotation.tables import report_rows, review_rows
from medgen.workspace import Workspace
from medgen.workspace.catalog import now
from schemas import LETTERS, TAXONOMY

PARTS = (*TAXONOMY.dimension_ids(), "acceptable")
NO_DEFECT = "no defect"
WINDOWS = 8
"""Windows of the alpha-over-time curve (fewer when there are fewer than 50 paired sources per window)."""
GOLD_CHECK = "gold check"
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


def _parts(label: dict[str, Any], dimension_of: dict[str, str]) -> tuple[frozenset[str], ...]:
    """One candidate's answer as its tag set per dimension, then ``acceptable`` as a one-element set."""
    by_dim: dict[str, set[str]] = defaultdict(set)
    for tag in label["defects"]:
        by_dim[dimension_of.get(tag, "")].add(tag)
    return (*(frozenset(by_dim.get(d, ())) for d in PARTS[:-1]), frozenset({str(label["acceptable"])}))


@dataclass
class _Person:
    statuses: Counter[str] = field(default_factory=Counter)
    lead_times: array = field(default_factory=lambda: array("d"))
    gold_hits: int = 0
    gold_candidates: int = 0
    gold_tasks: int = 0
    consensus_hits: Counter[str] = field(default_factory=Counter)
    consensus_n: int = 0
    prefill: Counter[str] = field(default_factory=Counter)


class Collector:
    """Takes one source's answer rows at a time (``add``) and keeps what the report needs."""

    def __init__(self, workspace: Workspace, min_agreement: float) -> None:
        self.workspace = workspace
        self.min_agreement = min_agreement
        self.needed = required_votes(workspace)
        self.dimension_of = {tag.id: d.id for d in TAXONOMY.dimensions for tag in d.tags}
        self.people: dict[str, _Person] = defaultdict(_Person)
        self.index: dict[str, int] = {}
        self.vote_annotator, self.vote_source = array("i"), array("i")
        self.vote_bits = bytearray()
        self.first_seen: list[str] = []
        self.confused: dict[str, Counter[tuple[str, str]]] = {p: Counter() for p in PARTS[:-1]}
        self.gold: list[tuple[str, str, str]] = []  # (annotator, source, labels) of latest valid gold answers
        self.sources = self.answers = 0

    def add(self, source_id: str, rows: list[Any]) -> None:
        self.sources += 1
        latest: dict[str, Any] = {}
        for row in rows:
            if row["kind"] == ADJUDICATION:
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
        parsed = {name: json.loads(row["labels"]) for name, row in latest.items()}
        if any(row["is_gold"] for row in rows):
            self.gold += [(name, source_id, row["labels"]) for name, row in latest.items()]
        prefill = rows[0]["prefill"]
        if prefill:
            self._prefill(json.loads(prefill), parsed)
        if len(latest) >= 2:
            self._paired(source_id, rows, latest, parsed)

    def _prefill(self, before: list[dict[str, Any]], parsed: dict[str, list[dict[str, Any]]]) -> None:
        for name, labels in parsed.items():
            for a, b in zip(before, labels, strict=True):
                same = a["acceptable"] == b["acceptable"] and sorted(a["defects"]) == sorted(b["defects"])
                self.people[name].prefill["kept" if same else "changed"] += 1

    def _paired(
        self, source_id: str, rows: list[Any], latest: dict[str, Any], parsed: dict[str, list[dict[str, Any]]]
    ) -> None:
        import numpy as np

        source = len(self.first_seen)
        self.first_seen.append(min(str(row["created_at"] or "") for row in latest.values()))
        parts = {
            name: [_parts(label, self.dimension_of) for label in labels] for name, labels in parsed.items()
        }
        for name, candidates in parts.items():
            bits = [
                [bool(p) if j < len(PARTS) - 1 else p == {"True"} for j, p in enumerate(c)]
                for c in candidates
            ]
            self.vote_annotator.append(self.index.setdefault(name, len(self.index)))
            self.vote_source.append(source)
            self.vote_bits += np.packbits(np.array(bits, dtype=bool)).tobytes()
        for (_, a), (_, b) in itertools.combinations(sorted(parts.items()), 2):
            for ca, cb in zip(a, b, strict=True):
                for j, part in enumerate(PARTS[:-1]):
                    if ca[j] != cb[j]:
                        for x in sorted(ca[j] - cb[j]) or [NO_DEFECT]:
                            for y in sorted(cb[j] - ca[j]) or [NO_DEFECT]:
                                self.confused[part][tuple(sorted((x, y)))] += 1  # type: ignore[index]
        consensus, _, _ = source_consensus(
            source_id,
            [r for r in rows if r["status"] == "valid"],
            self.needed.get(source_id, 1),
            self.min_agreement,
        )
        if consensus is None:
            return
        agreed = [_parts(label.model_dump(), self.dimension_of) for label in consensus.labels]
        for name, candidates in parts.items():
            person = self.people[name]
            person.consensus_n += len(LETTERS)
            for mine, theirs in zip(candidates, agreed, strict=True):
                for j, part in enumerate(PARTS):
                    person.consensus_hits[part] += mine[j] == theirs[j]


def _votes_matrix(collector: Collector) -> Any:
    """(annotators, paired sources, candidates, parts) int8: 1 / 0 per vote, -1 where that person did not answer."""
    import numpy as np

    count, size = len(collector.vote_source), len(LETTERS) * len(PARTS)
    dense = np.full(
        (len(collector.index), len(collector.first_seen), len(LETTERS), len(PARTS)), -1, dtype=np.int8
    )
    if count:
        packed = np.frombuffer(bytes(collector.vote_bits), dtype=np.uint8).reshape(count, -1)
        bits = np.unpackbits(packed, axis=1)[:, :size].reshape(count, len(LETTERS), len(PARTS))
        annotators = np.frombuffer(collector.vote_annotator, dtype=np.int32)
        sources = np.frombuffer(collector.vote_source, dtype=np.int32)
        dense[annotators, sources] = bits
    return dense


def _alpha_of(dense: Any, part: int, sources: Any = None) -> tuple[float | None, int]:
    """Alpha of one part over ``sources`` (all paired sources when None), and the units it pairs."""
    import numpy as np

    chosen = dense[:, :, :, part] if sources is None else dense[:, sources][:, :, :, part]  # people, sources, 4
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
        for given, known in zip(labels_from_json(labels), truth, strict=True):
            person.gold_candidates += 1
            person.gold_hits += given.acceptable == known.acceptable and given.defects == known.defects


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
