"""Score models on a split of an exported dataset: what `medgen eval` runs.

Models: a transformers checkpoint (local folder or Hub id), any OpenAI-compatible chat endpoint
(``medgen.inference.endpoint``), and the baselines of ``training.evaluation.baselines``; each is
scored by ``training.evaluation.metrics`` and reported by ``training.evaluation.report``. Raw model
outputs are cached under ``<output-dir>/raw/`` so an interrupted run resumes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from medgen.errors import MedgenError, one_line
from medgen.files import atomic_write_text
from medgen.inference.answering import answering_model
from medgen.inference.cache import cache_path, generate_cached
from medgen.inference.checkpoint import wants_boxes
from schemas.taxonomy import QUESTION_DIMENSIONS
from training.evaluation import baselines
from training.evaluation.config import DEFAULT_BASELINES, EvalConfig
from training.evaluation.metrics import (
    EvalResults,
    ModelResult,
    Prediction,
    Question,
    asking_for_boxes,
    questions_from_dataset,
    score_predictions,
    score_text,
)
from training.evaluation.report import write_predictions, write_report


def run_eval(
    config: EvalConfig, on_progress: Callable[[str, int | None, int], None] | None = None
) -> EvalResults:
    """Score the configured model and baselines on the split; write every output file; return the results.

    ``on_progress(description, total, advance)`` reports progress (a ``total`` starts a new task).
    """
    from training.data import load_split

    try:
        data = load_split(config.dataset, config.split, config.revision)
    except (ConnectionError, OSError, ValueError) as error:  # the Hub unreachable, no such dataset or split
        raise MedgenError(
            f"cannot load split {config.split!r} of {config.dataset}: {one_line(error)}"
        ) from None
    questions = questions_from_dataset(data, config.limit)
    if not questions:
        raise MedgenError(f"split {config.split!r} of {config.dataset} has no questions to score")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        *_model_rows(config, questions, on_progress),
        *_baseline_rows(config, questions, data),
    ]
    models = [ModelResult(name=r.name, kind=r.kind, details=r.details, scores=r.scores) for r in rows]
    counts = {d: sum(q.dimension == d for q in questions) for d in QUESTION_DIMENSIONS}
    results = EvalResults(
        dataset=config.dataset,
        split=config.split,
        revision=config.revision,
        num_questions=len(questions),
        questions_per_dimension=counts,
        models=models,
        config=config.model_dump(mode="json"),
    )
    write_predictions([p for row in rows for p in row.predictions], config.output_dir / "predictions.jsonl")
    write_report(results, config.output_dir)
    atomic_write_text(config.output_dir / "eval_config.json", config.model_dump_json(indent=2) + "\n")
    return results


@dataclass
class _Row:
    """One scored row of the report and the predictions behind it."""

    name: str
    kind: Any
    details: dict[str, Any]
    predictions: list[Prediction]
    scores: Any


def _scored(
    config: EvalConfig,
    name: str,
    kind: Any,
    details: dict[str, Any],
    preds: list[Prediction],
    amend: Any = None,
) -> _Row:
    """``preds`` scored with the bootstrap; ``amend(scores)`` adds what only this row knows."""
    scores = score_predictions(preds, config.bootstrap, config.seed)
    if amend is not None:
        amend(scores)
    return _Row(name, kind, details, preds, scores)


def _model_rows(
    config: EvalConfig, questions: list[Question], on_progress: Callable[[str, int | None, int], None] | None
) -> list[_Row]:
    """The configured model's row (none when only baselines are scored); its answers cached as they come."""
    name = config.model_name()
    if name is None:
        return []
    model = answering_model(config)
    kind: Literal["checkpoint", "endpoint"] = "endpoint" if config.endpoint else "checkpoint"
    details = model.details()
    if wants_boxes(config):  # the answer variant with boxes: the dimension questions ask for them
        questions = [asking_for_boxes(q) for q in questions]
        details["answer_boxes"] = True
    cache = cache_path(config.output_dir, name, {**details, "max_new_tokens": config.max_new_tokens})
    if on_progress:
        on_progress(f"scoring {name}", len(questions), 0)
    raw = generate_cached(
        questions, model.generate, cache, on_done=lambda k: on_progress("", None, k) if on_progress else None
    )
    return [_scored(config, name, kind, details, [score_text(name, q, raw[q.id]) for q in questions])]


def _baseline_rows(config: EvalConfig, questions: list[Question], data: Any) -> list[_Row]:
    """Random, majority (learned from the train split) and human (leave-one-out) rows, as configured."""
    wanted = config.baselines
    if wanted is None:
        wanted = [*DEFAULT_BASELINES, *(["human"] if any(q.votes for q in questions) else [])]
    rows = []
    for baseline in wanted:
        if baseline == "random":
            preds = baselines.random_predictions(questions, seed=config.seed)
            amend = functools.partial(baselines.add_random_expectations, questions=questions)
            rows.append(_scored(config, "random", "random", baselines.RANDOM_DETAILS, preds, amend))
        elif baseline == "majority":
            answers, learned_from = baselines.majority_source(
                config.dataset, config.split, config.revision, data
            )
            table = baselines.majority_answers(answers)
            preds = baselines.majority_predictions(questions, table)
            details = {"learned_from": learned_from, "answers": table}
            rows.append(_scored(config, "majority", "majority", details, preds))
        elif baseline == "human":
            preds, details = baselines.human_predictions(questions)
            rows.append(_scored(config, "human", "human", details, preds))
    return rows
