"""Reference points for the report: uniform random, majority answer per dimension, and humans.

- random: a uniformly drawn non-empty subset of A-D per question (seeded). Its expected exact-match
  accuracy is exactly 1/15 per question; the expected DPA is computed exactly too.
- majority: per dimension, the most frequent answer of the train split (of the evaluated split when
  the export has no train split; the report says which).
- human: how often one annotator's answer equals the consensus answer, over every (annotator,
  question) pair, from the workspace's valid annotations.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medgen.errors import MedgenError
from schemas.models import CandidateLabel, answer_letters, format_answer
from schemas.taxonomy import LETTERS, QUESTION_DIMENSIONS
from training.evaluation.metrics import (
    ALL,
    CellScore,
    Prediction,
    Question,
    answers_from_dataset,
    score_letters,
)
from training.rewards import dpa_score, parse_gold

ANSWER_SETS: tuple[frozenset[str], ...] = tuple(
    frozenset(combo) for size in range(1, len(LETTERS) + 1) for combo in itertools.combinations(LETTERS, size)
)
"""The 15 non-empty subsets of A-D: every answer a question can have."""

RANDOM_DETAILS = {
    "answers": "uniform over the 15 non-empty subsets of A-D",
    "expected_accuracy": f"1/{len(ANSWER_SETS)} per question",
}


def random_predictions(questions: Sequence[Question], seed: int = 0) -> list[Prediction]:
    """One uniformly random non-empty answer set per question."""
    picks = np.random.default_rng(seed).integers(0, len(ANSWER_SETS), size=len(questions))
    return [
        score_letters("random", q.id, q.dimension, q.answer, set(ANSWER_SETS[i]))
        for q, i in zip(questions, picks, strict=True)
    ]


def expected_random_dpa(gold: str) -> float:
    """Exact expected DPA (lambda = 1) of a uniform random answer to a question with this gold answer."""
    gold_set = parse_gold(gold)
    return sum(dpa_score(set(answer), gold_set, lam=1.0) for answer in ANSWER_SETS) / len(ANSWER_SETS)


def add_random_expectations(scores: dict[str, CellScore], questions: Sequence[Question]) -> None:
    """Fill the analytic expected accuracy (1/15) and expected DPA into each non-empty cell."""
    for cell, score in scores.items():
        members = [q for q in questions if cell == ALL or q.dimension == cell]
        if members:
            score.expected_accuracy = 1 / len(ANSWER_SETS)
            score.expected_dpa = float(np.mean([expected_random_dpa(q.answer) for q in members]))


def majority_answers(answers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Most frequent answer per dimension (ties: the alphabetically first); unseen dimensions get the overall one."""

    def most_common(values: list[str]) -> str:
        counts = Counter(values)
        return min(counts, key=lambda answer: (-counts[answer], answer))

    if not answers:
        raise MedgenError("the majority baseline has no answers to learn from: the split is empty")
    fallback = most_common([answer for _, answer in answers])
    table = {}
    for dimension in QUESTION_DIMENSIONS:
        values = [answer for d, answer in answers if d == dimension]
        table[dimension] = most_common(values) if values else fallback
    return table


def majority_predictions(questions: Sequence[Question], table: dict[str, str]) -> list[Prediction]:
    return [
        score_letters("majority", q.id, q.dimension, q.answer, parse_gold(table[q.dimension]))
        for q in questions
    ]


def majority_source(
    dataset: str, split: str, revision: str | None, evaluated: Any
) -> tuple[list[tuple[str, str]], str]:
    """Answers the majority baseline learns from and where they come from: the train split, else ``evaluated``."""
    from training.data import load_split

    if split != "train":
        try:
            train = load_split(dataset, "train", revision)
        except (MedgenError, ValueError, FileNotFoundError):
            train = None
        if train is not None and len(train):
            return answers_from_dataset(train), "train split"
    return answers_from_dataset(evaluated), f"evaluated split ({split}): no separate train split"


def annotator_votes(workspace: Any) -> dict[str, dict[str, tuple[CandidateLabel, ...]]]:
    """source id -> annotator -> labels of their latest valid annotation (adjudications left out)."""
    from annotation.consensus import ADJUDICATION, labels_from_json

    rows = workspace.catalog.query(
        "SELECT a.source_id, a.annotator, a.labels FROM annotations a "
        "LEFT JOIN ls_projects p ON p.ls_project_id = a.ls_project_id "
        "WHERE a.status = 'valid' AND a.labels IS NOT NULL AND COALESCE(p.kind, '') != ? "
        "ORDER BY a.source_id, a.ls_annotation_id",
        (ADJUDICATION,),
    )
    votes: dict[str, dict[str, tuple[CandidateLabel, ...]]] = {}
    for row in rows:
        votes.setdefault(row["source_id"], {})[row["annotator"]] = labels_from_json(row["labels"])
    return votes


def has_annotations(workspace: Path) -> bool:
    """Whether the workspace holds any valid annotation (so a human baseline can be computed)."""
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        return ws.catalog.count("annotations", "status = 'valid'") > 0


def human_predictions(
    questions: Sequence[Question], workspace: Path
) -> tuple[list[Prediction], dict[str, Any]]:
    """One prediction per (annotator, question): the annotator's own answer against the consensus answer.

    The consensus is the annotation stage's (``annotation.consensus.consensus_labels``); questions whose
    source has no consensus (unresolved ties, no valid annotation) are left out and counted.
    """
    from annotation.consensus import consensus_labels
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        consensus = consensus_labels(ws)
        votes = annotator_votes(ws)
    predictions = []
    covered = 0
    for q in questions:
        agreed = consensus.items.get(q.source_id)
        if agreed is None or not votes.get(q.source_id):
            continue
        covered += 1
        gold = format_answer(answer_letters(agreed.labels, q.dimension))
        for annotator, labels in sorted(votes[q.source_id].items()):
            letters = set(answer_letters(labels, q.dimension))
            predictions.append(score_letters(f"human:{annotator}", q.id, q.dimension, gold, letters))
    if not predictions:
        raise MedgenError(
            f"no annotation consensus in {workspace} covers a question of this split: run `medgen annotate pull` "
            "(and resolve ties) or drop the human baseline"
        )
    details = {
        "reference": "consensus answer (majority vote, the annotator's own vote included)",
        "annotators": len({a for by in votes.values() for a in by}),
        "questions_covered": covered,
        "questions_total": len(questions),
    }
    return predictions, details
