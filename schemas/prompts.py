"""Question, prompt and reference-answer text: one builder for export, SFT, GRPO and evaluation.

The prompt is a TRL conversational user turn with one ``{"type": "image"}`` placeholder per image,
in dataset order (source, A, B, C, D). The completion is ``<think>...</think><answer>A,C</answer>``.
"""

from __future__ import annotations

import re
from typing import Any

from schemas.models import SIMULATED_MARK, CandidateLabel, answer_letters, format_answer
from schemas.taxonomy import LETTERS, OVERALL, OVERALL_DESCRIPTION, TAXONOMY

ANSWER_INSTRUCTIONS = (
    "At least one of the images A-D is an answer. First reason about each generated image inside "
    "<think></think>. Then give the letters of every image that answers the question, in order and "
    "separated by commas (one letter, or several such as B,D), inside <answer></answer>."
)

BOX_INSTRUCTIONS = (
    "After </answer>, say where each answered image's defect is inside <boxes></boxes>: the letter, then "
    "(x0,y0,x1,y1) in thousandths of the image, or (x,y) for a point, separated by semicolons, e.g. "
    "<boxes>B (120,300,550,800); D (400,900)</boxes>."
)
"""The answer variant with boxes (``answer_boxes``): asked on the four dimensions' questions, not on overall."""

_TAG = re.compile(r"<\s*/?\s*(?:think|answer)\s*>", re.IGNORECASE)


def dimension_description(dimension: str) -> str:
    if dimension == OVERALL:
        return OVERALL_DESCRIPTION
    return TAXONOMY.dimension(dimension).description


def question_text(dimension: str) -> str:
    """The multiple-choice question about one dimension."""
    intro = "Image 1 is the original product photo; images A-D were generated from it."
    if dimension == OVERALL:
        return f"{intro} Considering {OVERALL_DESCRIPTION}, which generated images are acceptable to publish?"
    description = dimension_description(dimension)
    return f"{intro} Considering {description}, which generated images are unreasonable?"


def prompt_messages(question: str) -> list[dict[str, Any]]:
    """The user turn: each image in order between its label and a closing label, then the question and format.

    The closing label ("(end of image B)") comes after the image's tokens, so under causal attention it is
    the text that has seen both the image and its letter: a model that reads "Image B:" in its reasoning
    finds the image's content there. With the opening label alone, a small model from scratch could tie
    to its letter only what sat in an image's first tokens (the canary in tests/training/test_canary.py
    learnt a mark in the top-left corner and not one in the bottom-right; benchmarks/README.md,
    "Learnability").
    """
    content: list[dict[str, Any]] = []
    for label, name in (("1 (original)", "1"), *((letter, letter) for letter in LETTERS)):
        content += [
            {"type": "text", "text": f"Image {label}:"},
            {"type": "image", "text": None},
            {"type": "text", "text": f"(end of image {name})\n"},
        ]
    content.append({"type": "text", "text": f"{question}\n{ANSWER_INSTRUCTIONS}"})
    return [{"role": "user", "content": content}]


def _finding(label: CandidateLabel, dimension: str) -> str:
    tags_by_id = {tag.id: tag for d in TAXONOMY.dimensions for tag in d.tags}
    if dimension == OVERALL:
        if label.acceptable:
            return "no defect; it can be published"
        names = ", ".join(tags_by_id[t].label.lower() for t in label.defects)
        return f"not publishable ({names})"
    tags = label.defects_in(dimension)
    if not tags:
        return "no problem in this respect"
    findings = []
    for t in tags:
        description = tags_by_id[t].description.rstrip(".")  # the line adds its own full stop
        findings.append(f"{tags_by_id[t].label.lower()}: {description[0].lower()}{description[1:]}")
    return "; ".join(findings)


def rationale_text(
    labels: list[CandidateLabel] | tuple[CandidateLabel, ...], dimension: str, notes: bool = True
) -> str:
    """Reference chain of thought: a finding per candidate, annotators' notes (``notes``), then the conclusion.

    A simulated annotator's note (``[simulated] defects: ... (as labelled)``) is bookkeeping, not
    reasoning about the image, so it stays out.
    """
    lines = [
        f"I compare each generated image with the original, considering {dimension_description(dimension)}."
    ]
    for letter, label in zip(LETTERS, labels, strict=True):
        line = f"Image {letter}: {_finding(label, dimension)}."
        note = _TAG.sub("", label.rationale).strip()  # a note is text, never a tag of the answer format
        if notes and note and not note.startswith(SIMULATED_MARK):
            line += f" Note: {note}"
        lines.append(line)
    letters = answer_letters(labels, dimension)
    verdict = "acceptable" if dimension == OVERALL else "unreasonable"
    lines.append(f"So the {verdict} images are {format_answer(letters) or 'none'}.")
    return "\n".join(lines)


def completion_text(rationale: str, answer: str, boxes: str = "") -> str:
    return f"<think>{rationale}</think><answer>{answer}</answer>{boxes}"


def asks_for_boxes(prompt: list[dict[str, Any]]) -> bool:
    text = prompt[-1]["content"][-1].get("text") or ""
    return text.endswith(BOX_INSTRUCTIONS)


def with_box_instruction(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user turn asking for boxes as well (``BOX_INSTRUCTIONS`` after the answer format)."""
    if asks_for_boxes(prompt):
        return prompt
    *first, last = prompt
    parts = list(last["content"])
    parts[-1] = {**parts[-1], "text": f"{parts[-1]['text']}\n{BOX_INSTRUCTIONS}"}
    return [*first, {**last, "content": parts}]


def answer_boxes(answer: str, regions: list[list[Any]]) -> str:
    """The reference ``<boxes>`` text: the best-agreed region of each answered candidate that has one ("" when
    none has). ``regions`` is the export's column (dicts) or ``Region`` objects, per candidate."""
    from schemas.regions import answered_truths, format_boxes

    return format_boxes({letter: truths[:1] for letter, truths in answered_truths(answer, regions)})


def completion_messages(rationale: str, answer: str) -> list[dict[str, Any]]:
    """The reference assistant turn."""
    return [{"role": "assistant", "content": [{"type": "text", "text": completion_text(rationale, answer)}]}]
