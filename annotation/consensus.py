"""Consensus labels per source by majority vote over the valid annotations in the catalog.

Rules (per candidate): a defect tag is in the consensus when more than half of the annotators
marked it; ``acceptable`` is the majority answer. An exact tie (on ``acceptable`` or on a tag), a
majority 'not acceptable' without a majority tag, or agreement below ``min_agreement`` leaves the
source unresolved: it goes to the adjudication project, and an adjudicator's valid answer wins.

Pure catalog read: no Label Studio server is needed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from medgen.workspace import Workspace
from schemas import LETTERS, NUM_CANDIDATES, CandidateLabel
from schemas.models import SIMULATED_MARK

ADJUDICATION = "adjudication"
"""``ls_projects.kind`` of the adjudication project; its answers win over the vote."""

DEFAULT_MIN_AGREEMENT = 0.5


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
    items: dict[str, Consensus] = field(default_factory=dict)  # source_id -> consensus
    unresolved: dict[str, str] = field(default_factory=dict)  # source_id -> reason
    simulated: bool = False  # some labels behind ``items`` come from simulated annotators


def labels_from_json(text: str) -> tuple[CandidateLabel, ...]:
    return tuple(CandidateLabel.model_validate(item) for item in json.loads(text))


def labels_to_json(labels: tuple[CandidateLabel, ...] | list[CandidateLabel]) -> str:
    return json.dumps([label.model_dump(mode="json") for label in labels])


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
    rows = workspace.catalog.query(
        "SELECT source_id, MAX(is_gold) AS gold, COUNT(*) AS n FROM task_plan GROUP BY source_id"
    )
    overlaps = Counter(int(r["n"]) for r in rows if not r["gold"])
    usual = overlaps.most_common(1)[0][0] if overlaps else 1
    return {r["source_id"]: min(int(r["n"]), usual) if r["gold"] else int(r["n"]) for r in rows}


def consensus_labels(
    workspace: Workspace, min_agreement: float = DEFAULT_MIN_AGREEMENT, min_annotators: int | None = None
) -> ConsensusResult:
    """Consensus per source from the catalog's valid annotations; adjudicated answers win.

    ``min_annotators``: valid votes a source needs (None: its overlap, ``required_votes``).
    Sources that have annotation rows but no usable consensus land in ``unresolved`` with a reason.
    """
    required = required_votes(workspace) if min_annotators is None else {}
    rows = workspace.catalog.query(
        "SELECT a.source_id, a.annotator, a.status, a.labels, a.ls_annotation_id, p.kind "
        "FROM annotations a LEFT JOIN ls_projects p ON p.ls_project_id = a.ls_project_id "
        "ORDER BY a.source_id, a.ls_annotation_id"
    )
    votes: dict[str, dict[str, tuple[CandidateLabel, ...]]] = {}
    adjudicated: dict[str, tuple[CandidateLabel, ...]] = {}
    rejected: Counter[str] = Counter()
    simulated = False
    for row in rows:
        source_id = row["source_id"]
        votes.setdefault(source_id, {})
        if row["status"] != "valid":
            rejected[source_id] += 1
            continue
        labels = labels_from_json(row["labels"])
        simulated = simulated or any(label.rationale.startswith(SIMULATED_MARK) for label in labels)
        if row["kind"] == ADJUDICATION:
            adjudicated[source_id] = labels  # the latest adjudication wins (rows are in id order)
        else:
            votes[source_id][row["annotator"]] = labels  # one vote per annotator: their latest

    result = ConsensusResult(simulated=simulated)
    for source_id, by_annotator in votes.items():
        ballots = list(by_annotator.values())
        if source_id in adjudicated:
            labels = adjudicated[source_id]
            agreement = agreement_with(ballots, labels) if ballots else 1.0
            result.items[source_id] = Consensus(
                source_id, labels, len(ballots), agreement, True, dict(by_annotator)
            )
            continue
        if not ballots:
            result.unresolved[source_id] = f"no valid annotation ({rejected[source_id]} rejected)"
            continue
        needed = min_annotators if min_annotators is not None else required.get(source_id, 1)
        if len(ballots) < needed:
            result.unresolved[source_id] = f"only {len(ballots)} valid annotation(s), {needed} required"
            continue
        labels_or_none, agreement, reason = majority_vote(ballots, min_agreement)
        if labels_or_none is None:
            result.unresolved[source_id] = reason
        else:
            result.items[source_id] = Consensus(
                source_id, labels_or_none, len(ballots), agreement, False, dict(by_annotator)
            )
    return result
