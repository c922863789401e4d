"""Score models on a split of an exported dataset: what `medgen eval` runs.

Models: a transformers checkpoint (local folder or Hub id), any OpenAI-compatible chat endpoint
(``medgen.inference.endpoint``), and the baselines of ``training.evaluation.baselines``; each is
scored by ``training.evaluation.metrics`` and reported by ``training.evaluation.report``. Raw model
outputs are cached under ``<output-dir>/raw/`` so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from schemas.taxonomy import QUESTION_DIMENSIONS
from training.evaluation import baselines
from training.evaluation.metrics import (
    EvalResults,
    ModelResult,
    Prediction,
    Question,
    questions_from_dataset,
    score_predictions,
    score_text,
)
from training.evaluation.report import write_predictions, write_report

BaselineName = Literal["random", "majority", "human"]
DEFAULT_BASELINES: tuple[BaselineName, ...] = ("random", "majority")


class EvalConfig(BaseModel):
    """Everything one `medgen eval` run needs; saved in results.json so the run can be reproduced."""

    dataset: str = Field(description="Exported dataset: a local export folder or a Hub dataset id.")
    split: str = Field(default="test", description="Split to score.")
    revision: str | None = Field(
        default=None, description="Hub revision (tag, e.g. v1.0, or commit) of the dataset."
    )
    model: str | None = Field(
        default=None,
        description="Checkpoint to score (local folder or Hub id); with --endpoint, the model name the server knows.",
    )
    model_revision: str | None = Field(default=None, description="Hub revision of the checkpoint.")
    endpoint: str | None = Field(
        default=None, description="Base URL of an OpenAI-compatible API, e.g. http://host:8000/v1."
    )
    name: str | None = Field(
        default=None, description="Row name of the scored model in the report (default: derived)."
    )
    baselines: list[BaselineName] | None = Field(
        default=None,
        description="Built-in baselines to score alongside (None: random and majority, plus human when the "
        "split carries annotator votes).",
    )
    max_new_tokens: int = Field(default=512, gt=0, description="Generation budget per answer.")
    image_max_pixels: int | None = Field(
        default=None,
        description="Resize images to at most this many pixels (checkpoint). None: the bound the checkpoint "
        "was trained with (its train_config.yaml), else the shipped recipes' 200704 (448x448).",
    )
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy decoding (the default).")
    batch_size: int = Field(default=4, gt=0, description="Questions per generate() call (checkpoint models).")
    device: str | None = Field(
        default=None, description="torch device for checkpoints (default: cuda if available)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Checkpoint dtype."
    )
    concurrency: int = Field(default=4, gt=0, description="Requests in flight at once (endpoint models).")
    max_retries: int = Field(
        default=4, ge=0, description="Retries with exponential backoff per request (endpoint)."
    )
    timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds per request before it is retried (endpoint)."
    )
    seed: int = Field(default=0, description="Seed of the random baseline and of the bootstrap.")
    bootstrap: int = Field(default=1000, ge=0, description="Bootstrap resamples for the 95% CI (0 = no CI).")
    limit: int | None = Field(
        default=None, gt=0, description="Score only the first N questions of the split."
    )
    output_dir: Path = Field(
        description="Folder for results.json, results.md, results.png, predictions.jsonl."
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_base(cls, url: str | None) -> str | None:
        from medgen.inference.endpoint import endpoint_base

        return endpoint_base(url)

    @model_validator(mode="after")
    def _one_model(self) -> EvalConfig:
        if self.endpoint and not self.model:
            raise ValueError("--endpoint needs the model name to request: add --model NAME (e.g. gpt-4o)")
        if not self.model and self.baselines == []:
            raise ValueError(
                "nothing to score: give --model, --endpoint with --model, or at least one baseline"
            )
        return self

    def model_name(self) -> str | None:
        """Row name of the scored model."""
        if self.name:
            return self.name
        if self.model and not self.endpoint and Path(self.model).exists():
            return Path(self.model).resolve().name
        return self.model


# Model outputs, cached so an interrupted run resumes where it stopped -----------------------------


def cache_path(output_dir: Path, name: str, settings: dict[str, Any]) -> Path:
    """Raw-output cache of one model under one set of generation settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"
    return output_dir / "raw" / f"{slug}-{digest}.jsonl"


def read_cache(path: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that question is simply asked again
            done[record["id"]] = record["raw"]
    return done


def generate_cached(
    questions: Sequence[Question],
    generate: Callable[[Sequence[Question]], Iterable[tuple[Question, str]]],
    cache: Path,
    on_done: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Raw outputs for ``questions``: read from ``cache``, the rest generated and appended as they arrive."""
    done = read_cache(cache)
    todo = [q for q in questions if q.id not in done]
    if on_done:
        on_done(len(questions) - len(todo))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as file:
        for question, raw in generate(todo):
            done[question.id] = raw
            file.write(json.dumps({"id": question.id, "raw": raw}) + "\n")
            file.flush()
            if on_done:
                on_done(1)
    return done


# The run ------------------------------------------------------------------------------------------


def run_eval(
    config: EvalConfig, on_progress: Callable[[str, int | None, int], None] | None = None
) -> EvalResults:
    """Score the configured model and baselines on the split; write every output file; return the results.

    ``on_progress(description, total, advance)`` reports progress (a ``total`` starts a new task).
    """
    from medgen.inference.endpoint import EndpointClient, EndpointConfig

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
        if not config.endpoint:
            model: CheckpointModel | EndpointClient = CheckpointModel(config)
            kind: Literal["checkpoint", "endpoint"] = "checkpoint"
            details = model.details()
        else:
            model = EndpointClient(
                EndpointConfig(
                    url=config.endpoint or "",
                    model=config.model or "",
                    max_tokens=config.max_new_tokens,
                    temperature=config.temperature,
                    concurrency=config.concurrency,
                    max_retries=config.max_retries,
                    timeout_s=config.timeout_s,
                )
            )
            kind = "endpoint"
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


RECIPE_IMAGE_MAX_PIXELS = 200704
"""448x448, the bound of the shipped recipes: 256 tokens per image instead of the processor's default
(a 1024x1024 candidate would cost 1,369)."""


def training_image_bound(checkpoint: str) -> int | None:
    """``image_max_pixels`` a medgen run trained ``checkpoint`` with (its saved config), if it says."""
    import yaml

    from training.config import RESOLVED_CONFIG_NAME

    saved = Path(checkpoint) / RESOLVED_CONFIG_NAME
    if not saved.is_file():
        return None
    value = (yaml.safe_load(saved.read_text()) or {}).get("image_max_pixels")
    return int(value) if value else None


def answering_model(config: Any) -> Any:
    """What answers questions for ``medgen screen`` and ``medgen cot``: the OpenAI-compatible endpoint
    ``config.endpoint`` when set, else the checkpoint ``config.model`` (fields as in ``EvalConfig``)."""
    if config.endpoint:
        from medgen.inference.endpoint import EndpointClient, EndpointConfig

        return EndpointClient(
            EndpointConfig(
                url=config.endpoint,
                model=config.model,
                max_tokens=config.max_new_tokens,
                temperature=config.temperature or 0.0,
                concurrency=config.concurrency,
                max_retries=config.max_retries,
                timeout_s=config.timeout_s,
            )
        )
    return CheckpointModel(config)


class CheckpointModel:
    """A transformers vision-language checkpoint (Qwen2.5-VL class, or a LoRA adapter folder), answering in batches."""

    def __init__(self, config: EvalConfig):
        import torch

        from training.config import MedgenArguments
        from training.model import check_vlm, load_model, load_processor

        source = config.model or ""
        check_vlm(source, config.model_revision)
        bound = config.image_max_pixels or training_image_bound(source) or RECIPE_IMAGE_MAX_PIXELS
        self.config = config.model_copy(update={"image_max_pixels": bound})
        arguments = MedgenArguments(
            model_name_or_path=source,
            model_revision=config.model_revision,
            dtype=config.dtype,
            freeze_vision_tower=False,
            image_max_pixels=bound,
        )
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = load_processor(arguments)
        self.model = load_model(arguments).to(self.device).eval()

    def details(self) -> dict[str, Any]:
        c = self.config
        return {
            "checkpoint": c.model,
            "revision": c.model_revision,
            "class": type(self.model).__name__,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "decoding": "greedy" if c.temperature == 0 else f"sampling, temperature {c.temperature:g}",
            "max_new_tokens": c.max_new_tokens,
            "image_max_pixels": c.image_max_pixels,
        }

    def generate(self, questions: Sequence[Question]) -> Iterable[tuple[Question, str]]:
        """(question, answer text) per question, ``batch_size`` questions per ``generate()`` call."""
        import torch

        from medgen.inference.prompts import decode_completions, generation_inputs

        c = self.config
        sampling = (
            {"do_sample": True, "temperature": c.temperature} if c.temperature > 0 else {"do_sample": False}
        )
        for start in range(0, len(questions), c.batch_size):
            batch = questions[start : start + c.batch_size]
            rows = [{"prompt": q.prompt, "images": q.images} for q in batch]
            inputs = generation_inputs(self.processor, rows).to(self.device)
            with torch.inference_mode():
                output = self.model.generate(**inputs, max_new_tokens=c.max_new_tokens, **sampling)
            answers = decode_completions(self.processor, output, inputs["input_ids"].shape[1])
            yield from zip(batch, answers, strict=True)
