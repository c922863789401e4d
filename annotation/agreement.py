"""Inter-annotator agreement, gold accuracy, consensus, and the adjudication queue.

Krippendorff's alpha (nominal, the ``krippendorff`` library) is computed per dimension on the
binary judgement 'this candidate has a defect in this dimension', and for ``acceptable``; units
are (source, candidate). Gold accuracy compares each annotator's valid answers on gold tasks with
the known labels. Unresolved consensus items go to the adjudication project in Label Studio.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.accounts import NewLogin
from annotation.client import Connection
from annotation.consensus import (
    ADJUDICATION,
    DEFAULT_MIN_AGREEMENT,
    ConsensusResult,
    consensus_labels,
    labels_from_json,
)
from annotation.prefill import edit_rates, stored
from annotation.push import (
    ADJUDICATOR,
    PushReport,
    adjudication_project,
    import_batches,
    known_labels,
    recover_tasks,
)
from annotation.tables import (
    consensus_rows,
    count_prefills,
    queue_sources,
    unusable_without_valid,
    valid_votes,
)
from medgen.files import atomic_write_text
from medgen.workspace import Workspace
from medgen.workspace.catalog import now
from schemas import LETTERS, TAXONOMY

REPORT = "agreement.json"


@dataclass
class AgreementReport:
    alpha: dict[str, float | None]  # dimension id or 'acceptable' -> alpha (None: not computable)
    gold: dict[str, dict[str, float | int]]  # annotator -> tasks, candidate_accuracy, acceptable_accuracy
    consensus: ConsensusResult
    annotators: list[str] = field(default_factory=list)
    adjudication_pushed: int = 0
    adjudication_requeued: int = 0
    report_path: Path | None = None
    logins: list[NewLogin] = field(default_factory=list)  # the adjudicator's, when made now
    # Per dimension: shares of pre-filled decisions annotators kept, changed, added to or removed (and n).
    prefill_edits: dict[str, dict[str, float]] = field(default_factory=dict)


def _alpha(data: Any) -> float | None:
    import krippendorff
    import numpy as np

    pairable = (np.sum(~np.isnan(data), axis=0) >= 2).sum()
    if data.size == 0 or pairable == 0:
        return None
    try:
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        return None  # a single value in the whole domain: alpha is undefined
    return None if value != value else value  # NaN -> None


PARTS = (*TAXONOMY.dimension_ids(), "acceptable")


@dataclass
class Votes:
    """The valid votes (outside adjudication) that alpha can pair, compact: 0/1 per (candidate, part).

    Only sources with votes from two or more annotators are kept: a unit with a single value adds
    nothing to Krippendorff's coincidences, so alpha is the same, and memory follows the overlap (a few
    per cent of the sources in a usual team plan), not the workspace. ``bits[k, i, j]``: vote k says
    candidate i is defective in ``PARTS[j]`` (or acceptable, the last part).
    """

    annotators: list[str]  # everyone with a valid vote, paired or not
    sources: list[str]  # the sources with two or more annotators' votes
    annotator: Any  # int32 per vote: index into annotators
    source: Any  # int32 per vote: index into sources
    bits: Any  # uint8, (votes, 4, len(PARTS))


def _votes(workspace: Workspace) -> Votes:
    """The catalog's pairable valid votes (an annotator's latest per source), one source at a time from a cursor."""
    import numpy as np

    cursor = valid_votes(workspace)
    annotators: dict[str, int] = {}
    sources: list[str] = []
    keys: list[tuple[int, int]] = []
    packed: list[bytes] = []
    for source_id, rows in itertools.groupby(cursor, key=lambda row: row["source_id"]):
        latest = {annotators.setdefault(row["annotator"], len(annotators)): row["labels"] for row in rows}
        if len(latest) < 2:
            continue
        for a, text in latest.items():
            bits = [
                [*(bool(label.defects_in(part)) for part in PARTS[:-1]), label.acceptable]
                for label in labels_from_json(text)
            ]
            keys.append((a, len(sources)))
            packed.append(np.packbits(np.array(bits, dtype=bool)).tobytes())
        sources.append(source_id)
    count = len(keys)
    size = len(LETTERS) * len(PARTS)
    matrix = np.frombuffer(b"".join(packed), dtype=np.uint8).reshape(count, -1) if count else None
    bits = (
        np.unpackbits(matrix, axis=1)[:, :size].reshape(count, len(LETTERS), len(PARTS))
        if matrix is not None
        else np.zeros((0, len(LETTERS), len(PARTS)), dtype=np.uint8)
    )
    index = np.array(keys, dtype=np.int32).reshape(count, 2)
    return Votes(list(annotators), sources, index[:, 0], index[:, 1], bits)


def _prefill_edits(workspace: Workspace) -> dict[str, dict[str, float]]:
    """What annotators did with the pre-fills (only sources that had one; none when nothing was pre-filled)."""
    if not count_prefills(workspace):
        return {}
    prefills = stored(workspace)
    latest = {  # each person's latest valid vote per source (votes come by source, then id)
        (r["annotator"], r["source_id"]): r["labels"]
        for r in valid_votes(workspace)
        if r["source_id"] in prefills
    }
    pairs = [(prefills[s].labels, labels_from_json(text)) for (_, s), text in latest.items()]
    return edit_rates(pairs) if pairs else {}


def krippendorff_alpha(workspace: Workspace, votes: Votes | None = None) -> dict[str, float | None]:
    """Nominal alpha per dimension ('is this candidate defective here?') and for ``acceptable``."""
    import numpy as np

    votes = _votes(workspace) if votes is None else votes
    order = sorted(range(len(votes.annotators)), key=lambda i: votes.annotators[i])
    row_of = {a: r for r, a in enumerate(order)}
    rows = np.array([row_of[a] for a in range(len(votes.annotators))], dtype=np.int64)[votes.annotator]
    alpha: dict[str, float | None] = {}
    for j, part in enumerate(PARTS):
        matrix = np.full((len(votes.annotators), len(votes.sources) * len(LETTERS)), np.nan)
        for i in range(len(LETTERS)):  # unit = (source, candidate)
            matrix[rows, votes.source * len(LETTERS) + i] = votes.bits[:, i, j]
        alpha[part] = _alpha(matrix)
    return alpha


def compute_agreement(
    workspace: Workspace, min_agreement: float = DEFAULT_MIN_AGREEMENT, min_annotators: int | None = None
) -> AgreementReport:
    """Alpha, gold accuracy and consensus from the catalog alone."""
    votes = _votes(workspace)
    annotators = sorted(votes.annotators)
    alpha = krippendorff_alpha(workspace, votes)
    del votes
    scores: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    gold_votes = valid_votes(workspace, gold_only=True)  # a few per cent of the votes
    for source, rows in itertools.groupby(gold_votes, key=lambda row: row["source_id"]):
        latest = {row["annotator"]: labels_from_json(row["labels"]) for row in rows}
        truth = known_labels(workspace.catalog.candidates(source))
        if truth is None:
            continue
        for annotator, labels in latest.items():
            for given, known in zip(labels, truth, strict=True):
                exact = given.acceptable == known.acceptable and given.defects == known.defects
                scores[annotator].append((exact, given.acceptable == known.acceptable))
    gold: dict[str, dict[str, float | int]] = {}
    for annotator, hits in sorted(scores.items()):
        gold[annotator] = {
            "gold_tasks": len(hits) // len(LETTERS),
            "candidate_accuracy": sum(h[0] for h in hits) / len(hits),
            "acceptable_accuracy": sum(h[1] for h in hits) / len(hits),
        }
    consensus = consensus_labels(
        workspace, min_agreement=min_agreement, min_annotators=min_annotators, keep=False
    )
    edits = _prefill_edits(workspace)
    return AgreementReport(alpha, gold, consensus, annotators, prefill_edits=edits)


def agreement(
    workspace: Workspace,
    connection: Connection | None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    min_annotators: int | None = None,
) -> AgreementReport:
    """Compute agreement, write ``reports/agreement.json``, and queue unresolved items for adjudication.

    The adjudicator sees each annotator's answers on the task. An adjudication that was skipped
    comes back by itself (the project requeues skips to the adjudicator); one that is not valid
    (incomplete, contradictory...) is deleted in Label Studio so the task is in the queue again,
    and stays in the catalog with its reasons.
    """
    report = compute_agreement(workspace, min_agreement, min_annotators)
    if connection is not None and report.consensus.unresolved:
        pushed = PushReport()
        connection, project_id = adjudication_project(connection, workspace, pushed)
        report.logins = pushed.logins
        recover_tasks(connection, workspace, project_id, ADJUDICATOR, set())
        queued = queue_sources(workspace, project_id)
        todo = sorted(s for s in report.consensus.unresolved if s not in queued)
        shown = {source: {"votes": describe_votes(workspace, source)} for source in todo}
        report.adjudication_pushed = import_batches(
            connection, workspace, project_id, ADJUDICATOR, todo, set(), extra=shown
        )
        report.adjudication_requeued = requeue_invalid(workspace, connection, project_id)
    report.report_path = write_report(workspace, report)
    return report


def describe_votes(workspace: Workspace, source: str) -> str:
    """'ann1: A ok, B floating | ann2: ...' for one source, in the tags' own words: what the adjudicator weighs."""
    names = {tag.id: tag.label.lower() for d in TAXONOMY.dimensions for tag in d.tags}
    rows = consensus_rows(workspace, source)
    latest = {  # the latest vote each
        row["annotator"]: labels_from_json(row["labels"])
        for row in rows
        if row["status"] == "valid" and row["kind"] != ADJUDICATION
    }
    parts = []
    for annotator, labels in sorted(latest.items()):
        said = ", ".join(
            f"{letter} {'ok' if label.acceptable else ' + '.join(names[tag] for tag in label.defects)}"
            for letter, label in zip(LETTERS, labels, strict=True)
        )
        parts.append(f"{annotator}: {said}")
    return " | ".join(parts) or "no valid answer from the annotators"


def requeue_invalid(workspace: Workspace, connection: Connection, project_id: int) -> int:
    """Delete adjudications that cannot be used, so their tasks are in the adjudicator's queue again."""
    from annotation.client import api_error
    from annotation.validation import CONTRADICTORY, INCOMPLETE, INVALID

    unusable = unusable_without_valid(workspace, project_id, (INVALID, INCOMPLETE, CONTRADICTORY))
    queue = connection.queue(ADJUDICATOR)
    requeued = 0
    for annotation_id in unusable:
        try:
            queue.client.annotations.delete(annotation_id)
        except Exception as error:
            if getattr(error, "status_code", None) == 404:
                continue  # already gone
            raise api_error("requeueing an adjudication", error) from None
        requeued += 1
    return requeued


def write_report(workspace: Workspace, report: AgreementReport) -> Path:
    c = report.consensus
    body = {
        "computed_at": now(),
        "annotators": report.annotators,
        "krippendorff_alpha": report.alpha,
        "gold": report.gold,
        "consensus": {
            "sources": c.resolved,
            "adjudicated": c.adjudicated,
            "mean_agreement": c.agreement_sum / c.resolved if c.resolved else None,
        },
        "regions": {  # where the defects are: consensus regions and, where several marked a tag, how many agreed
            "consensus_regions": c.regions,
            "marked_by_several": c.shared_regions,
            "mean_share_agreeing": c.region_agreement_sum / c.shared_regions if c.shared_regions else None,
        },
        "unresolved": report.consensus.unresolved,
        "adjudication_tasks_pushed": report.adjudication_pushed,
        "adjudications_requeued": report.adjudication_requeued,
        "prefill_edits": report.prefill_edits,
    }
    path = workspace.reports_dir / REPORT
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path
