"""Score models on a split of an exported dataset: what `medgen eval` runs.

Models: a transformers checkpoint (local folder or Hub id), any OpenAI-compatible chat endpoint
(``medgen.inference.endpoint``), and the baselines of ``training.evaluation.baselines``; each is
scored by ``training.evaluation.metrics`` and reported by ``training.evaluation.report``. Raw model
outputs are cached under ``<output-dir>/raw/`` so an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.inference.answering import answering_model
from medgen.inference.cache import cache_path, generate_cached
from schemas.taxonomy import QUESTION_DIMENSIONS
from training.evaluation import baselines
from training.evaluation.config import DEFAULT_BASELINES, EvalConfig
from training.evaluation.metrics import (
    EvalResults,
    ModelResult,
    Prediction,
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

    def progress(description: str, total: int | None, advance: int) -> None:
        if on_progress:
            on_progress(description, total, advance)

    from training.data import load_split

    try:
        data = load_split(config.dataset, config.split, config.revision)
    except (ConnectionError, OSError, ValueError) as error:  # the Hub unreachable, no such dataset or split
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MedgenError(f"cannot load split {config.split!r} of {config.dataset}: {reason}") from None
    questions = questions_from_dataset(data, config.limit)
    if not questions:
        raise MedgenError(f"split {config.split!r} of {config.dataset} has no questions to score")
    output_dir = config.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    models: list[ModelResult] = []
    predictions: list[Prediction] = []

    def add(
        name: str, kind: Any, details: dict[str, Any], preds: list[Prediction], extra: Any = None
    ) -> None:
        """Score ``preds`` and record them as one row of the report (``extra`` amends the scores)."""
        scores = score_predictions(preds, config.bootstrap, config.seed)
        if extra is not None:
            extra(scores)
        models.append(ModelResult(name=name, kind=kind, details=details, scores=scores))
        predictions.extend(preds)

    name = config.model_name()
    if name is not None:
        model = answering_model(config)
        kind: Literal["checkpoint", "endpoint"] = "endpoint" if config.endpoint else "checkpoint"
        details = model.details()
        cache = cache_path(output_dir, name, {**details, "max_new_tokens": config.max_new_tokens})
        progress(f"scoring {name}", len(questions), 0)
        raw = generate_cached(questions, model.generate, cache, on_done=lambda k: progress("", None, k))
        add(name, kind, details, [score_text(name, q, raw[q.id]) for q in questions])

    wanted = config.baselines
    if wanted is None:
        wanted = [*DEFAULT_BASELINES, *(["human"] if any(q.votes for q in questions) else [])]
    for baseline in wanted:
        if baseline == "random":
            add(
                "random",
                "random",
                baselines.RANDOM_DETAILS,
                baselines.random_predictions(questions, seed=config.seed),
                extra=lambda scores: baselines.add_random_expectations(scores, questions),
            )
        elif baseline == "majority":
            answers, learned_from = baselines.majority_source(
                config.dataset, config.split, config.revision, data
            )
            table = baselines.majority_answers(answers)
            preds = baselines.majority_predictions(questions, table)
            add("majority", "majority", {"learned_from": learned_from, "answers": table}, preds)
        elif baseline == "human":
            preds, details = baselines.human_predictions(questions)
            add("human", "human", details, preds)

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
    write_predictions(predictions, output_dir / "predictions.jsonl")
    write_report(results, output_dir)
    atomic_write_text(output_dir / "eval_config.json", config.model_dump_json(indent=2) + "\n")
    return results
