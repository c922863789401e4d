"""Majority-vote consensus, ties, low agreement and adjudication, from catalog rows alone."""

from __future__ import annotations

import json

import pytest

from annotation.consensus import ADJUDICATION, consensus_labels, labels_to_json, majority_vote
from medgen.workspace.catalog import now
from schemas import CandidateLabel

OK = CandidateLabel(acceptable=True)


def bad(*tags: str) -> CandidateLabel:
    return CandidateLabel(defects=tags, acceptable=False)


def _add(
    ws, ann_id: int, source: str, annotator: str, labels, project: int = 1, status: str = "valid"
) -> None:
    with ws.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO annotations (ls_annotation_id, ls_task_id, ls_project_id, annotator, source_id, status,"
            " reasons, labels, pulled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ann_id,
                ann_id,
                project,
                annotator,
                source,
                status,
                json.dumps([]),
                labels_to_json(labels) if labels else None,
                now(),
            ),
        )


def test_majority_vote_and_agreement():
    a = (OK, bad("floating"), OK, bad("shadow_missing"))
    b = (OK, bad("floating", "scale_wrong"), OK, bad("shadow_missing"))
    c = (OK, bad("floating"), OK, bad("shadow_missing"))
    labels, agreement, reason = majority_vote([a, b, c])
    assert reason == ""
    assert labels[1].defects == ("floating",) and labels[0].acceptable
    assert agreement == 11 / 12


def test_ties_and_contradictory_majority_are_unresolved():
    a = (OK, OK, OK, OK)
    b = (bad("floating"), OK, OK, OK)
    labels, _, reason = majority_vote([a, b])
    assert labels is None and "tie on whether A" in reason
    c = (bad("floating"), OK, OK, OK)
    d = (bad("scale_wrong"), OK, OK, OK)
    e = (bad("visible_seam"), OK, OK, OK)
    labels, _, reason = majority_vote([c, d, e])
    assert labels is None and "agrees on no defect tag" in reason


def test_consensus_labels_reads_catalog_and_adjudication_wins(workspace):
    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at) VALUES (1, 'annotator', 'x', 't', ?)",
            (now(),),
        )
        conn.execute(
            "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at) VALUES (9, ?, NULL, 'adj', ?)",
            (ADJUDICATION, now()),
        )
    agreed = (OK, bad("floating"), OK, OK)
    _add(workspace, 1, "s1", "ann1", agreed)
    _add(workspace, 2, "s1", "ann2", agreed)
    _add(workspace, 3, "s2", "ann1", (OK, OK, OK, OK))
    _add(workspace, 4, "s2", "ann2", (bad("floating"), OK, OK, OK))
    _add(workspace, 5, "s3", "ann1", None, status="cancelled")
    result = consensus_labels(workspace)
    assert set(result.items) == {"s1"} and not result.simulated
    assert result.items["s1"].num_annotators == 2 and result.items["s1"].agreement == 1.0
    assert not result.items["s1"].adjudicated
    assert "tie" in result.unresolved["s2"] and "no valid annotation" in result.unresolved["s3"]

    _add(workspace, 6, "s2", "adjudicator", (bad("floating"), OK, OK, OK), project=9)
    result = consensus_labels(workspace)
    assert result.items["s2"].adjudicated and result.items["s2"].labels[0].defects == ("floating",)
    assert result.items["s2"].agreement == 7 / 8
    assert "s2" not in result.unresolved


def test_streamed_agreement_equals_the_reference_computation(workspace):
    """Compact votes give the alpha krippendorff computes from the plain matrix; the lazy consensus the
    export reads equals consensus_labels; a later vote replaces an earlier one."""
    import random

    import krippendorff
    import numpy as np

    from annotation.agreement import PARTS, compute_agreement, krippendorff_alpha
    from annotation.consensus import ConsensusLabels
    from schemas import LETTERS, TAXONOMY

    with workspace.catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at) VALUES (1, 'annotator', 'x', 't', ?)",
            (now(),),
        )
    rng = random.Random(0)
    tags = [t.id for d in TAXONOMY.dimensions for t in d.tags]
    votes: dict[tuple[str, str], tuple] = {}
    ann_id = 0
    for s in range(40):
        for annotator in ("ann1", "ann2", "ann3"):
            if rng.random() < 0.2:
                continue  # not every annotator saw every source
            for _ in range(1 + (rng.random() < 0.1)):  # sometimes annotated twice: the later one counts
                labels = tuple(bad(rng.choice(tags)) if rng.random() < 0.4 else OK for _ in LETTERS)
                ann_id += 1
                _add(workspace, ann_id, f"s{s:02d}", annotator, labels)
                votes[(annotator, f"s{s:02d}")] = labels
    for s in range(3):  # sources only one annotator saw, one who never overlaps: no pair, no effect on alpha
        labels = (bad(tags[s]), OK, OK, OK)
        ann_id += 1
        _add(workspace, ann_id, f"solo{s}", "ann4", labels)
        votes[("ann4", f"solo{s}")] = labels
    annotators, sources = sorted({a for a, _ in votes}), sorted({s for _, s in votes})
    expected = {}
    for part in PARTS:
        matrix = [
            [
                np.nan
                if (a, s) not in votes
                else float(
                    votes[(a, s)][i].acceptable
                    if part == "acceptable"
                    else bool(votes[(a, s)][i].defects_in(part))
                )
                for s in sources
                for i in range(len(LETTERS))
            ]
            for a in annotators
        ]
        expected[part] = float(
            krippendorff.alpha(reliability_data=np.array(matrix), level_of_measurement="nominal")
        )
    got = krippendorff_alpha(workspace)
    assert got == {part: pytest.approx(value) for part, value in expected.items()}

    full = consensus_labels(workspace)
    lazy = ConsensusLabels(workspace)
    assert {s: lazy.get(s) for s in sources} == {s: full.items.get(s) for s in sources}
    assert lazy.unresolved == full.unresolved and full.resolved == len(full.items) > 0
    report = compute_agreement(workspace)
    assert report.consensus.resolved == full.resolved and not report.consensus.items  # counts only
    assert report.annotators == ["ann1", "ann2", "ann3", "ann4"]  # listed even without a paired vote
