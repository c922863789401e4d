"""Rewards for GRPO and scores for evaluation: answer parsing, the DPA reward, the format reward.

DPA (Dynamic Proportional Accuracy) — the paper's formula is not public; this is medgen's:

    G = gold letters, P = predicted letters parsed from <answer>, N = 4 options, t in [0, 1]
    unparseable -> 0;  P == G -> 1;  otherwise  lambda(t) * max(0, |P & G| / |G| - |P - G| / (N - |G|))

with the false-positive term 0 when |G| == N. lambda(t) decays from lambda0 < 1 as training
progresses, so partial credit is dense early (a learning signal when exact answers are rare) and
fades late (exact answers win).
"""

from __future__ import annotations

import math
import re
from typing import Any

from schemas import LETTERS
from schemas.models import COMPLETION_RE
from schemas.regions import answered_truths, closeness, parse_boxes

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FORMAT_RE = COMPLETION_RE  # one definition of a well-formed completion: schemas.models
DEFAULT_LAMBDA0 = 0.5


def parse_answer(text: str) -> set[str] | None:
    """Letters inside the last <answer>...</answer>; None when missing, empty or not letters A-D.

    Lower case and spaces are tolerated; duplicates collapse; any other token makes it unparseable.
    """
    found = ANSWER_RE.findall(text)
    if not found:
        return None
    tokens = [token.strip().upper() for token in re.split(r"[,\s]+", found[-1].strip()) if token.strip()]
    if not tokens or any(token not in LETTERS for token in tokens):
        return None
    return set(tokens)


def parse_gold(answer: str) -> set[str]:
    return {letter for letter in answer.split(",") if letter}


def lambda_schedule(progress: float, lambda0: float = DEFAULT_LAMBDA0, schedule: str = "cosine") -> float:
    """Weight of partial credit at training progress ``progress`` in [0, 1]: lambda0 decaying to 0."""
    if not 0.0 <= lambda0 <= 1.0:
        raise ValueError(f"lambda0 must lie in [0, 1], got {lambda0}")
    t = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return lambda0
    if schedule == "linear":
        return lambda0 * (1.0 - t)
    if schedule == "cosine":
        return lambda0 * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown lambda schedule {schedule!r}: use constant, linear or cosine")


def dpa_score(
    predicted: set[str] | None, gold: set[str], lam: float, num_options: int = len(LETTERS)
) -> float:
    """DPA for one answer given the partial-credit weight ``lam``."""
    if predicted is None or not gold:
        return 0.0
    if predicted == gold:
        return 1.0
    recall = len(predicted & gold) / len(gold)
    negatives = num_options - len(gold)
    false_positive_rate = len(predicted - gold) / negatives if negatives else 0.0
    return lam * max(0.0, recall - false_positive_rate)


def completion_text(completion: Any) -> str:
    """Text of a completion given as a string or as TRL conversational messages."""
    if isinstance(completion, str):
        return completion
    parts: list[str] = []
    for message in completion:
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(part.get("text") or "" for part in content if part.get("type") == "text")
    return "".join(parts)


def training_progress(trainer_state: Any) -> float:
    if trainer_state is None or not getattr(trainer_state, "max_steps", 0):
        return 0.0
    return trainer_state.global_step / trainer_state.max_steps


def dpa_accuracy(
    completions: list[Any], answer: list[str], trainer_state: Any = None, **kwargs: Any
) -> list[float]:
    """DPA reward against the dataset's ``answer`` column, lambda decaying with training progress."""
    lam = lambda_schedule(
        training_progress(trainer_state),
        lambda0=float(kwargs.get("dpa_lambda0", DEFAULT_LAMBDA0)),
        schedule=str(kwargs.get("dpa_schedule", "cosine")),
    )
    return [
        dpa_score(parse_answer(completion_text(c)), parse_gold(a), lam)
        for c, a in zip(completions, answer, strict=True)
    ]


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when the completion is exactly <think>...</think><answer>letters</answer>, else 0.0."""
    return [1.0 if FORMAT_RE.match(completion_text(c).strip()) else 0.0 for c in completions]


def make_dpa_accuracy(lambda0: float = DEFAULT_LAMBDA0, schedule: str = "cosine") -> Any:
    """``dpa_accuracy`` with lambda0 and the schedule fixed from a config (keeps the name TRL logs it under)."""
    lambda_schedule(0.0, lambda0, schedule)  # fail now on a bad config, not at the first reward

    def dpa_accuracy_configured(
        completions: list[Any], answer: list[str], trainer_state: Any = None, **kwargs: Any
    ) -> list[float]:
        return dpa_accuracy(completions, answer, trainer_state, dpa_lambda0=lambda0, dpa_schedule=schedule)

    dpa_accuracy_configured.__name__ = "dpa_accuracy"
    return dpa_accuracy_configured


def localisation_score(text: str, answer: str, regions: list[list[Any]]) -> float | None:
    """How well a completion's ``<boxes>`` place the answer's defects: per answered candidate with a true region,
    the best IoU of a box it names for that letter with a true box (1 for a named point or box centre on a true
    point, within ``POINT_RADIUS``), averaged; None when no answered candidate has a true region."""
    named = parse_boxes(text)
    scores = [
        max((closeness(guess, truth) for guess in named.get(letter, []) for truth in truths), default=0.0)
        for letter, truths in answered_truths(answer, regions)
    ]
    return sum(scores) / len(scores) if scores else None


def localisation_reward(
    completions: list[Any], answer: list[str], regions: list[list[Any]] | None = None, **kwargs: Any
) -> list[float]:
    """GRPO's localisation term (``answer_boxes``): ``localisation_score`` against the export's ``regions``
    column; 0 where the question has no true region (the same for every completion of it: no signal)."""
    if regions is None:
        return [0.0] * len(completions)
    return [
        localisation_score(completion_text(c), a, r) or 0.0
        for c, a, r in zip(completions, answer, regions, strict=True)
    ]
