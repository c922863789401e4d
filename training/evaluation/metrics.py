"""What evaluation scores and how: questions, scored predictions, per-cell scores and the results file.

Metrics, per question dimension and over all questions (the paper's "overall"):

- exact-match accuracy: the predicted letter set equals the gold set;
- mean DPA score with lambda = 1 (``training.rewards.dpa_score``): partial credit at full weight;
- format-compliance rate (``training.rewards.format_reward``), for models that write text;
- answer-parse failures: outputs with no readable ``<answer>letters</answer>``;
- localisation, where the split has regions (``schemas.regions``): over the answer's candidates that have a true
  region, the share a named box finds (hit rate at IoU 0.5; a point within ``POINT_RADIUS``) and the share whose
  named box centre or point lies on a true region (pointing accuracy). A candidate the model names no box for
  counts as missed, so a model that gives no boxes scores 0 where the split has regions;
- the number of questions per cell and a seeded bootstrap 95% confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from medgen.errors import MedgenError
from schemas.models import format_answer
from schemas.regions import answered_truths, hits, parse_boxes, points_to
from schemas.taxonomy import OVERALL, QUESTION_DIMENSIONS
from training.rewards import dpa_score, format_reward, parse_answer, parse_gold

ALL = "all"
"""Key of the cell over every question, the publishable one included. Not ``overall``: that is the
dimension of the 'which candidates are acceptable to publish?' question."""

DIMENSIONS = "dimensions"
"""Key of the cell over the four dimensions' questions, without the publishable one: the paper's
"Overall (4 dimensions)", medgen's headline number (the publishable question has the opposite
polarity and comes once per source, so it is reported beside it, not mixed in)."""

CELLS: tuple[str, ...] = (*QUESTION_DIMENSIONS, DIMENSIONS, ALL)


@dataclass
class Question:
    """One benchmark question as evaluation sees it."""

    id: str
    source_id: str
    dimension: str
    answer: str
    prompt: list[dict[str, Any]]
    images: list[Any]
    votes: list[dict[str, str]] = field(default_factory=list)  # exported annotators' own answers
    regions: list[list[Any]] = field(
        default_factory=list
    )  # the export's regions column (none before regions)


@dataclass
class Prediction:
    """One model's answer to one question, scored. ``raw`` is None for baselines that give letters only."""

    model: str
    id: str
    dimension: str
    gold: str
    raw: str | None
    parsed: str | None
    correct: bool
    dpa: float
    format_ok: bool | None
    source_id: str = ""  # questions of one source are resampled together in the bootstrap
    located: list[tuple[bool, bool]] = field(
        default_factory=list
    )  # (hit, pointing) per candidate with a region


def score_text(model: str, question: Question, raw: str) -> Prediction:
    """Score a model's written answer."""
    letters = parse_answer(raw)
    prediction = score_letters(
        model, question.id, question.dimension, question.answer, letters, source_id=question.source_id
    )
    prediction.raw = raw
    prediction.format_ok = format_reward([raw])[0] == 1.0
    prediction.located = locate(raw, question)
    return prediction


def asking_for_boxes(question: Question) -> Question:
    """The question in the answer variant with boxes (the publishable question stays as it is)."""
    from dataclasses import replace

    from schemas.prompts import with_box_instruction

    return (
        question
        if question.dimension == OVERALL
        else replace(question, prompt=with_box_instruction(question.prompt))
    )


def locate(raw: str, question: Question) -> list[tuple[bool, bool]]:
    """(hit at IoU 0.5, pointing) for each answered candidate with a true region (publishable questions: none)."""
    if question.dimension == OVERALL or not question.regions:
        return []
    named = parse_boxes(raw)
    found = []
    for letter, truths in answered_truths(question.answer, question.regions):
        pairs = [(guess, truth) for guess in named.get(letter, []) for truth in truths]
        found.append((any(hits(g, t) for g, t in pairs), any(points_to(g, t) for g, t in pairs)))
    return found


def score_letters(
    model: str, id: str, dimension: str, gold: str, letters: set[str] | None, source_id: str = ""
) -> Prediction:
    """Score an answer given as a letter set (None = unparseable)."""
    gold_set = parse_gold(gold)
    return Prediction(
        model=model,
        id=id,
        dimension=dimension,
        gold=gold,
        raw=None,
        parsed=None if letters is None else format_answer(letters),
        correct=letters == gold_set,
        dpa=dpa_score(letters, gold_set, lam=1.0),
        format_ok=None,
        source_id=source_id,
    )


class CellScore(BaseModel):
    """Scores of one model on one dimension (or on all questions)."""

    n: int = Field(description="Questions scored (for the human baseline: annotator-question pairs).")
    accuracy: float | None = Field(description="Exact-match accuracy in [0, 1]; None when n = 0.")
    accuracy_ci95: tuple[float, float] | None = Field(default=None, description="Bootstrap 95% interval.")
    dpa: float | None = Field(description="Mean DPA score with lambda = 1.")
    dpa_ci95: tuple[float, float] | None = Field(default=None, description="Bootstrap 95% interval.")
    format_rate: float | None = Field(
        default=None, description="Share of well-formatted outputs (text models only)."
    )
    parse_failures: int = Field(default=0, description="Outputs with no readable answer.")
    expected_accuracy: float | None = Field(
        default=None, description="Analytic expectation (random baseline)."
    )
    expected_dpa: float | None = Field(default=None, description="Analytic expectation (random baseline).")
    located_n: int = Field(
        default=0, description="Answered candidates with a true region (localisation's n)."
    )
    box_hit_rate: float | None = Field(default=None, description="Share found by a named box at IoU 0.5.")
    pointing: float | None = Field(
        default=None, description="Share whose named box centre lies on a true region."
    )


class ModelResult(BaseModel):
    """One row of the report."""

    name: str
    kind: Literal["checkpoint", "endpoint", "random", "majority", "human"]
    details: dict[str, Any] = Field(default_factory=dict, description="What was scored and how (no secrets).")
    scores: dict[str, CellScore] = Field(
        description="Per question dimension, plus 'all' over every question."
    )


class EvalResults(BaseModel):
    """The content of results.json."""

    dataset: str
    split: str
    revision: str | None = None
    num_questions: int
    questions_per_dimension: dict[str, int]
    models: list[ModelResult]
    config: dict[str, Any] = Field(default_factory=dict)


def bootstrap_ci(
    values: npt.NDArray[np.float64],
    resamples: int,
    rng: np.random.Generator,
    groups: Sequence[str] | None = None,
) -> tuple[float, float] | None:
    """Percentile 95% interval of the mean of ``values`` over ``resamples`` resamples with replacement.

    ``groups`` (e.g. the source of each question) are resampled whole: up to five questions share a
    source and their answers are correlated, so resampling questions alone makes the interval too
    narrow. Without groups each value is its own.
    """
    if resamples == 0 or len(values) == 0:
        return None
    if groups is None:
        codes = np.arange(len(values))
    else:
        codes = np.unique(np.asarray(groups, dtype=object), return_inverse=True)[1].ravel()
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes).astype(float)
    index = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[index].sum(axis=1) / counts[index].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def score_cell(predictions: Sequence[Prediction], resamples: int = 1000, seed: int = 0) -> CellScore:
    """Scores of a set of predictions: accuracy, DPA, format rate, parse failures, n and bootstrap CIs."""
    n = len(predictions)
    correct = np.array([p.correct for p in predictions], dtype=float)
    dpa = np.array([p.dpa for p in predictions], dtype=float)
    formatted = [p.format_ok for p in predictions if p.format_ok is not None]
    located = [pair for p in predictions for pair in p.located]
    rng = np.random.default_rng(seed)
    # Questions without a known source (hand-made ones) each stand alone.
    groups = [p.source_id or f"question:{p.id}:{i}" for i, p in enumerate(predictions)]
    return CellScore(
        n=n,
        accuracy=float(correct.mean()) if n else None,
        accuracy_ci95=bootstrap_ci(correct, resamples, rng, groups),
        dpa=float(dpa.mean()) if n else None,
        dpa_ci95=bootstrap_ci(dpa, resamples, rng, groups),
        format_rate=float(np.mean(formatted)) if formatted else None,
        parse_failures=sum(p.parsed is None for p in predictions),
        located_n=len(located),
        box_hit_rate=float(np.mean([hit for hit, _ in located])) if located else None,
        pointing=float(np.mean([point for _, point in located])) if located else None,
    )


def score_predictions(
    predictions: Sequence[Prediction], resamples: int = 1000, seed: int = 0
) -> dict[str, CellScore]:
    """A cell per question dimension, one over the four dimensions (the headline) and one over all questions."""
    cells = {
        dimension: score_cell([p for p in predictions if p.dimension == dimension], resamples, seed)
        for dimension in QUESTION_DIMENSIONS
    }
    cells[DIMENSIONS] = score_cell([p for p in predictions if p.dimension != OVERALL], resamples, seed)
    cells[ALL] = score_cell(predictions, resamples, seed)
    return cells


# Loading questions --------------------------------------------------------------------------------


def questions_from_dataset(dataset: Any, limit: int | None = None) -> list[Question]:
    """Questions of a ``datasets.Dataset`` with the export's columns (``dimension`` string or ClassLabel)."""
    required = {"id", "source_id", "dimension", "answer", "prompt", "images"}
    missing = required - set(dataset.column_names)
    if missing:
        raise MedgenError(
            f"the dataset lacks column(s) {', '.join(sorted(missing))}: evaluate a split written by `medgen export`"
        )
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    feature = dataset.features["dimension"]
    to_name: Callable[[Any], str] = feature.int2str if hasattr(feature, "int2str") else str
    questions = []
    for row in dataset:
        dimension = to_name(row["dimension"])
        if dimension not in QUESTION_DIMENSIONS:
            raise MedgenError(f"question {row['id']} has unknown dimension {dimension!r}")
        questions.append(
            Question(
                id=row["id"],
                source_id=row["source_id"],
                dimension=dimension,
                answer=row["answer"],
                prompt=row["prompt"],
                images=row["images"],
                votes=list(row.get("votes") or []),  # exports before 0.2 have no votes column
                regions=list(row.get("regions") or []),  # nor before regions
            )
        )
    return questions


def answers_from_dataset(dataset: Any) -> list[tuple[str, str]]:
    """(dimension, answer) of every row, without decoding images: what the majority baseline learns from."""
    feature = dataset.features["dimension"]
    to_name: Callable[[Any], str] = feature.int2str if hasattr(feature, "int2str") else str
    columns = dataset.select_columns(["dimension", "answer"])
    return [(to_name(d), a) for d, a in zip(columns["dimension"], columns["answer"], strict=True)]


def prediction_record(prediction: Prediction) -> dict[str, Any]:
    return asdict(prediction)
