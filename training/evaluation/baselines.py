"""Reference points for the report: uniform random, majority answer per dimension, and humans.

- random: a uniformly drawn non-empty subset of A-D per question (seeded). Its expected exact-match
  accuracy is exactly 1/15 per question; the expected DPA is computed exactly too.
- majority: per dimension, the most frequent answer of the train split (of the evaluated split when
  the export has no train split; the report says which).
- human: how often one annotator's answer equals the other annotators' majority (leave-one-out;
  ties fall back to the exported answer), over every (annotator, question) pair, from the votes
  the export carries.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from medgen.errors import MedgenError
from schemas.taxonomy import LETTERS, OVERALL, QUESTION_DIMENSIONS
from training.evaluation.metrics import (
    ALL,
    DIMENSIONS,
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
        score_letters("random", q.id, q.dimension, q.answer, set(ANSWER_SETS[i]), source_id=q.source_id)
        for q, i in zip(questions, picks, strict=True)
    ]


def expected_random_dpa(gold: str) -> float:
    """Exact expected DPA (lambda = 1) of a uniform random answer to a question with this gold answer."""
    gold_set = parse_gold(gold)
    return sum(dpa_score(set(answer), gold_set, lam=1.0) for answer in ANSWER_SETS) / len(ANSWER_SETS)


def add_random_expectations(scores: dict[str, CellScore], questions: Sequence[Question]) -> None:
    """Fill the analytic expected accuracy (1/15) and expected DPA into each non-empty cell."""
    for cell, score in scores.items():
        members = [
            q
            for q in questions
            if cell == ALL or q.dimension == cell or (cell == DIMENSIONS and q.dimension != OVERALL)
        ]
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
        score_letters("majority", q.id, q.dimension, q.answer, parse_gold(table[q.dimension]), q.source_id)
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


def leave_one_out_reference(others: Sequence[str], exported: str) -> str:
    """The answer an annotator is scored against: the others' majority, else the exported answer.

    The others' strict majority is a reference the annotator took no part in; when they tie, say
    "none", or there is nobody else, the exported answer (the consensus the dataset publishes) decides.
    """
    counts = Counter(others).most_common()
    majority = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else ""
    # An empty majority ("none of them") is not an answer a question of the benchmark can have.
    return majority or exported


def human_predictions(questions: Sequence[Question]) -> tuple[list[Prediction], dict[str, Any]]:
    """One prediction per (annotator, question): the annotator's own exported answer, leave-one-out.

    Each annotator is scored against the majority of the *other* annotators' answers to the same
    question (``leave_one_out_reference``), so their own vote never counts in their favour; the
    votes and the fallback answer come from the export itself. Questions without votes are left
    out and counted.
    """
    predictions = []
    covered = 0
    annotators: set[str] = set()
    for q in questions:
        if not q.votes:
            continue
        covered += 1
        for vote in sorted(q.votes, key=lambda v: v["annotator"]):
            annotators.add(vote["annotator"])
            others = [other["answer"] for other in q.votes if other["annotator"] != vote["annotator"]]
            reference = leave_one_out_reference(others, q.answer)
            letters = {letter for letter in vote["answer"].split(",") if letter}
            predictions.append(
                score_letters(
                    f"human:{vote['annotator']}", q.id, q.dimension, reference, letters, q.source_id
                )
            )
    if not predictions:
        raise MedgenError(
            "no question of this split carries annotator votes: the human baseline needs an export made from "
            "annotations (medgen export --labels consensus), or drop it (--baselines random,majority)"
        )
    details = {
        "reference": "other annotators' majority answer (leave-one-out; ties: the exported answer)",
        "annotators": len(annotators),
        "questions_covered": covered,
        "questions_total": len(questions),
    }
    return predictions, details
