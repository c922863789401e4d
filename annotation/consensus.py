"""Consensus labels per source by majority vote over the valid annotations in the catalog.

Rules (per candidate): a defect tag is in the consensus when more than half of the annotators
marked it; ``acceptable`` is the majority answer. An exact tie (on ``acceptable`` or on a tag), a
majority 'not acceptable' without a majority tag, or agreement below ``min_agreement`` leaves the
source unresolved: it goes to the adjudication project, and an adjudicator's valid answer wins.

Pure catalog read: no Label Studio server is needed.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from annotation.options import DEFAULT_MIN_AGREEMENT
from annotation.regions import merge_regions
from annotation.tables import (
    ADJUDICATION,
    annotated_sources,
    any_valid_label_with,
    consensus_rows,
    count_annotated_sources,
    plan_sizes,
)
from medgen.workspace import Workspace
from schemas import LETTERS, NUM_CANDIDATES, CandidateLabel
from schemas.models import SIMULATED_MARK


@dataclass(frozen=True)
class Consensus:
    """The agreed labels of one source's four candidates."""

    source_id: str
    labels: tuple[CandidateLabel, ...]  # 4, in letter order
    num_annotators: int
    agreement: float  # mean share of annotators whose label equals the consensus, 0..1
    adjudicated: bool
    votes: dict[str, tuple[CandidateLabel, ...]] = field(default_factory=dict)  # annotator -> their labels


@dataclass
class ConsensusResult:
    items: dict[str, Consensus] = field(default_factory=dict)  # source_id -> consensus (when kept)
    unresolved: dict[str, str] = field(default_factory=dict)  # source_id -> reason
    simulated: bool = False  # some labels behind ``items`` come from simulated annotators
    resolved: int = 0  # sources with a consensus (``len(items)`` when the items are kept)
    adjudicated: int = 0
    agreement_sum: float = 0.0
    regions: int = 0  # consensus regions
    shared_regions: int = 0  # of them, marked by two or more people
    region_agreement_sum: float = 0.0  # over shared regions: agreed / of

    def add(self, consensus: Consensus, keep: bool = True) -> None:
        self.resolved += 1
        self.adjudicated += consensus.adjudicated
        self.agreement_sum += consensus.agreement
        for region in (region for label in consensus.labels for region in label.regions):
            self.regions += 1
            if region.of > 1:
                self.shared_regions += 1
                self.region_agreement_sum += region.agreed / region.of
        if keep:
            self.items[consensus.source_id] = consensus


@functools.lru_cache(maxsize=8192)
def labels_from_json(text: str) -> tuple[CandidateLabel, ...]:
    """Four candidate labels from the catalog's JSON. Cached: labels are frozen, and a team's answers repeat
    (most are "no defects" four times), so consensus, reports and exports parse each text once."""
    return tuple(CandidateLabel.model_validate(item) for item in json.loads(text))


def labels_to_json(labels: tuple[CandidateLabel, ...] | list[CandidateLabel]) -> str:
    """The catalog's JSON of four labels (``regions`` only when a label has some: older rows read the same)."""
    return json.dumps(
        [label.model_dump(mode="json", exclude=None if label.regions else {"regions"}) for label in labels]
    )


def _same(a: CandidateLabel, b: CandidateLabel) -> bool:
    return a.acceptable == b.acceptable and a.defects == b.defects


def agreement_with(votes: list[tuple[CandidateLabel, ...]], labels: tuple[CandidateLabel, ...]) -> float:
    """Mean over annotators and candidates of 'this annotator's label equals the consensus label'."""
    if not votes:
        return 0.0
    hits = sum(_same(vote[i], labels[i]) for vote in votes for i in range(NUM_CANDIDATES))
    return hits / (len(votes) * NUM_CANDIDATES)


def majority_vote(
    votes: list[tuple[CandidateLabel, ...]], min_agreement: float = DEFAULT_MIN_AGREEMENT
) -> tuple[tuple[CandidateLabel, ...] | None, float, str]:
    """Majority labels of several annotators' votes: (labels or None, agreement, reason when None)."""
    n = len(votes)
    labels: list[CandidateLabel] = []
    for i, letter in enumerate(LETTERS):
        accept_votes = sum(vote[i].acceptable for vote in votes)
        if 2 * accept_votes == n:
            return None, 0.0, f"tie on whether {letter} is acceptable ({accept_votes} of {n})"
        acceptable = 2 * accept_votes > n
        tag_votes = Counter(tag for vote in votes for tag in vote[i].defects)
        ties = sorted(tag for tag, count in tag_votes.items() if 2 * count == n)
        if ties:
            return None, 0.0, f"tie on {letter}: {', '.join(ties)}"
        defects = tuple(sorted(tag for tag, count in tag_votes.items() if 2 * count > n))
        if not acceptable and not defects:
            return None, 0.0, f"majority says {letter} is not acceptable but agrees on no defect tag"
        # A majority tag implies a majority 'not acceptable' (valid votes are consistent), so this holds.
        rationale = next(
            (v[i].rationale for v in votes if v[i].rationale and _same_parts(v[i], acceptable, defects)), ""
        )
        labels.append(CandidateLabel(defects=defects, acceptable=acceptable, rationale=rationale))
    result = tuple(labels)
    agreement = agreement_with(votes, result)
    if agreement < min_agreement:
        return None, agreement, f"low agreement {agreement:.2f} < {min_agreement:.2f}"
    return result, agreement, ""


def _same_parts(label: CandidateLabel, acceptable: bool, defects: tuple[str, ...]) -> bool:
    return label.acceptable == acceptable and label.defects == defects


def required_votes(workspace: Workspace) -> dict[str, int]:
    """Votes each source needs by default: the overlap it was pushed with (sources without a plan: 1).

    A non-gold source needs as many valid votes as annotators it was planned for; a gold source,
    planned for everyone, needs the usual overlap (the most common plan size of non-gold sources).
    """
    sizes = plan_sizes(workspace)
    overlaps = Counter(n for _, gold, n in sizes if not gold)
    usual = overlaps.most_common(1)[0][0] if overlaps else 1
    return {source: min(n, usual) if gold else n for source, gold, n in sizes}


def source_consensus(
    source_id: str, rows: list[Any], needed: int, min_agreement: float, require_review: bool = False
) -> tuple[Consensus | None, str, bool]:
    """One source's consensus from its annotation rows in id order: (consensus or None, reason, simulated).

    ``require_review``: an annotator's answer counts only when a review accepted it (adjudications count).
    """
    votes: dict[str, tuple[CandidateLabel, ...]] = {}
    adjudicated: tuple[CandidateLabel, ...] | None = None
    rejected = unreviewed = 0
    simulated = False
    for row in rows:
        if row["status"] != "valid":
            rejected += 1
            continue
        if require_review and row["kind"] != ADJUDICATION and row["review"] != "accepted":
            unreviewed += 1
            continue
        labels = labels_from_json(row["labels"])
        simulated = simulated or any(label.rationale.startswith(SIMULATED_MARK) for label in labels)
        if row["kind"] == ADJUDICATION:
            adjudicated = labels  # the latest adjudication wins (rows are in id order)
        else:
            votes[row["annotator"]] = labels  # one vote per annotator: their latest
    consensus, reason = consensus_of(
        source_id, votes, adjudicated, needed, min_agreement, rejected, unreviewed
    )
    return consensus, reason, simulated


def consensus_of(
    source_id: str,
    votes: dict[str, tuple[CandidateLabel, ...]],
    adjudicated: tuple[CandidateLabel, ...] | None,
    needed: int,
    min_agreement: float,
    rejected: int = 0,
    unreviewed: int = 0,
) -> tuple[Consensus | None, str]:
    """One source's consensus from its counted votes (each annotator's latest) and its latest adjudication:
    (consensus or None, the reason when None)."""
    ballots = list(votes.values())
    if adjudicated is not None:
        agreement = agreement_with(ballots, adjudicated) if ballots else 1.0
        labels = merge_regions(votes, adjudicated)
        return Consensus(source_id, labels, len(ballots), agreement, True, votes), ""
    if not ballots and unreviewed:
        return None, f"no accepted answer ({unreviewed} not accepted by a review yet)"
    if not ballots:
        return None, f"no valid annotation ({rejected} rejected)"
    if len(ballots) < needed:
        return None, f"only {len(ballots)} valid annotation(s), {needed} required"
    labels_or_none, agreement, reason = majority_vote(ballots, min_agreement)
    if labels_or_none is None:
        return None, reason
    labels = merge_regions(votes, labels_or_none)
    return Consensus(source_id, labels, len(ballots), agreement, False, votes), ""


def iter_consensus(
    workspace: Workspace, min_agreement: float = DEFAULT_MIN_AGREEMENT, min_annotators: int | None = None
) -> Iterator[tuple[str, Consensus | None, str, bool]]:
    """(source id, consensus or None, reason, simulated) per annotated source, streamed in source order.

    Rows come from a cursor, one source's at a time: memory does not grow with the workspace.
    """
    required = required_votes(workspace) if min_annotators is None else {}
    cursor = consensus_rows(workspace)
    for source_id, rows in itertools.groupby(cursor, key=lambda row: row["source_id"]):
        needed = min_annotators if min_annotators is not None else required.get(source_id, 1)
        yield source_id, *source_consensus(source_id, list(rows), needed, min_agreement)


def consensus_labels(
    workspace: Workspace,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    min_annotators: int | None = None,
    keep: bool = True,
) -> ConsensusResult:
    """Consensus per source from the catalog's valid annotations; adjudicated answers win.

    ``min_annotators``: valid votes a source needs (None: its overlap, ``required_votes``).
    Sources that have annotation rows but no usable consensus land in ``unresolved`` with a reason.
    ``keep=False`` keeps only the counts and the unresolved sources (agreement over 100k sources).
    """
    result = ConsensusResult()
    for source_id, consensus, reason, simulated in iter_consensus(workspace, min_agreement, min_annotators):
        result.simulated = result.simulated or simulated
        if consensus is None:
            result.unresolved[source_id] = reason
        else:
            result.add(consensus, keep)
    return result


class ConsensusLabels(Mapping[str, Consensus]):
    """Consensus computed for one source when asked (an export streams sources; none held for all).

    A source without consensus is left out (``get`` gives None) and its reason kept in ``unresolved``.
    """

    def __init__(
        self,
        workspace: Workspace,
        min_agreement: float = DEFAULT_MIN_AGREEMENT,
        min_annotators: int | None = None,
        require_review: bool = False,
    ):
        self.workspace = workspace
        self.min_agreement = min_agreement
        self.min_annotators = min_annotators
        self.require_review = require_review
        self.required = required_votes(workspace) if min_annotators is None else {}
        self.unresolved: dict[str, str] = {}

    def __getitem__(self, source_id: str) -> Consensus:
        rows = consensus_rows(self.workspace, source_id)
        if not rows:
            raise KeyError(source_id)
        needed = self.min_annotators if self.min_annotators is not None else self.required.get(source_id, 1)
        consensus, reason, _ = source_consensus(
            source_id, rows, needed, self.min_agreement, self.require_review
        )
        if consensus is None:
            self.unresolved[source_id] = reason
            raise KeyError(source_id)
        return consensus

    def __iter__(self) -> Iterator[str]:
        return iter(annotated_sources(self.workspace))

    def __len__(self) -> int:
        return count_annotated_sources(self.workspace)

    def simulated(self) -> bool:
        """Some valid annotation was made by a simulated annotator (its notes carry the mark)."""
        mark = json.dumps(SIMULATED_MARK)[1:-1]
        return any_valid_label_with(self.workspace, mark)
