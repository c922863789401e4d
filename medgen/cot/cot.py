"""Answer-driven chain of thought: a teacher model explains the known answer of each question.

The follow-up work (arXiv 2511.10055) compared hand-written, fully automated and *answer-driven*
reasoning for SFT: the teacher sees the five images, the dimension and the gold answer, and writes
why each candidate is or is not defective. ``medgen cot`` asks any OpenAI-compatible VLM (or a local
checkpoint) for that, one question at a time, and validates every rationale before keeping it:

- it parses as ``<think>...</think><answer>...</answer>``;
- its conclusion equals the gold answer (a teacher that contradicts the annotators is rejected);
- it discusses every candidate A-D and does not just quote the tag list (no tag ids, not a copy of
  the template rationale);
- it fits the length budget (``--min-words`` to ``--max-words``).

Accepted rationales go into the catalog's ``rationales`` table beside the gold answer they explain;
``medgen export --rationale teacher`` uses them where the answer still matches (else the template).
Rejected ones are kept with their reason (``reports/cot.json``) and not asked again unless
``--retry-rejected``. Each answer is stored as it arrives, so a killed run resumes where it stopped.
The API key comes from ``$OPENAI_API_KEY`` and is never written anywhere.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgen.cot.config import CotConfig
from medgen.errors import MedgenError
from medgen.export.rationales import ACCEPTED, REJECTED, TEACHER
from medgen.export.tables import rationale_totals, rationales, save_rationale
from medgen.files import atomic_write_text
from medgen.inference.answering import answering_model
from medgen.workspace import Workspace
from medgen.workspace.catalog import now
from schemas.models import COMPLETION_RE, completion_answer
from schemas.prompts import dimension_description, rationale_text
from schemas.taxonomy import LETTERS, OVERALL, TAXONOMY

REPORT = "cot.json"
TAG_IDS = re.compile(r"\b(" + "|".join(sorted(TAXONOMY.all_tags(), key=len, reverse=True)) + r")\b")
TEMPLATE_SIMILARITY = 0.8
"""A rationale this similar to the template (difflib ratio over words) only restates the tag list."""


@dataclass
class TeacherQuestion:
    """One benchmark question with its gold answer, as the teacher is asked it."""

    id: str
    source_id: str
    dimension: str
    answer: str
    template: str
    prompt: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)


@dataclass
class CotReport:
    asked: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason kind -> count
    skipped: int = 0  # answered before (resumed)
    questions: int = 0
    report_path: Path | None = None


def teacher_prompt(dimension: str, answer: str) -> list[dict[str, Any]]:
    """The teacher's turn: five images, the question's dimension, the known answer, the reply format."""
    if dimension == OVERALL:
        asked = "acceptable to publish"
        criterion = "considering every dimension: appearance, lighting and shadow, placement, extension"
    else:
        asked = "unreasonable"
        criterion = f"considering {dimension_description(dimension)}"
    answer_text = answer or "none"
    text = (
        "Image 1 is the original photo of a medicine product; images A, B, C and D were generated from it.\n"
        f"Question: {criterion}, which generated images are {asked}?\n"
        f"The correct answer, given by expert annotators, is: {answer_text}.\n"
        "Explain why: for each of images A, B, C and D, say what you see in it compared with the original "
        f"and why that makes it {asked} or not. Describe the images themselves; do not list label names. "
        f"Then conclude. Reply exactly as <think>your explanation</think><answer>{answer}</answer>."
    )
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(len(LETTERS) + 1)]
    content.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": "You explain expert image-quality judgements clearly and faithfully."},
        {"role": "user", "content": content},
    ]


class Rejection(str):
    """Why a teacher's rationale was not kept: the reason, as text, and its ``kind`` (what the report counts)."""

    kind: str

    def __new__(cls, text: str, kind: str) -> Rejection:
        made = super().__new__(cls, text)
        made.kind = kind
        return made


def validate(text: str, question: TeacherQuestion, config: CotConfig) -> tuple[str | None, str]:
    """(rationale, '') when ``text`` is acceptable, else (None, a ``Rejection``)."""
    match = COMPLETION_RE.match(text)
    if match is None:
        return None, Rejection("unparseable: not <think>...</think><answer>letters</answer>", "unparseable")
    concluded = completion_answer(text)
    if concluded != question.answer:
        return None, Rejection(
            f"contradicts the gold answer: concludes {concluded or 'none'}, gold is {question.answer}",
            "contradicts the gold answer",
        )
    rationale = text[text.index("<think>") + len("<think>") : text.index("</think>")].strip()
    tags = sorted(set(TAG_IDS.findall(rationale)))
    if tags:
        return None, Rejection(
            f"quotes tag ids ({', '.join(tags)}) instead of describing the images", "quotes tag ids"
        )
    words = rationale.split()
    similarity = difflib.SequenceMatcher(None, words, question.template.split(), autojunk=False).ratio()
    if similarity >= TEMPLATE_SIMILARITY:
        return None, Rejection(
            f"restates the template rationale (similarity {similarity:.2f})",
            "restates the template rationale",
        )
    missing = [letter for letter in LETTERS if not re.search(rf"\b{letter}\b", rationale)]
    if missing:
        return None, Rejection(
            f"does not discuss image(s) {','.join(missing)}", "does not discuss every image"
        )
    budget = f"{config.min_words}-{config.max_words}"
    if len(words) < config.min_words:
        return None, Rejection(f"too short: {len(words)} words, budget {budget}", "too short")
    if len(words) > config.max_words:
        return None, Rejection(f"too long: {len(words)} words, budget {budget}", "too long")
    return rationale, ""


def questions(workspace: Workspace, config: CotConfig) -> list[TeacherQuestion]:
    """Every question the workspace exports now, with its gold answer (images opened lazily)."""
    from medgen.export.samples import SampleError, build_source_samples, load_labels

    labels = load_labels(workspace, config.labels, config.min_agreement, config.min_annotators)
    by_source: dict[str, list[Any]] = {}
    for candidate in workspace.catalog.candidates():
        by_source.setdefault(candidate.source_id, []).append(candidate)
    found = []
    for source in workspace.catalog.sources():
        source_labels = labels.items.get(source.id)
        candidates = by_source.get(source.id, [])
        if source_labels is None:
            continue
        paths = [workspace.store.path(source.image_key)] + [
            workspace.store.path(c.image_key) for c in sorted(candidates, key=lambda c: c.slot)
        ]
        try:
            samples = build_source_samples(
                source.id, [str(p) for p in paths], candidates, source_labels, "cot"
            )
        except SampleError:
            continue
        for sample in samples:
            found.append(
                TeacherQuestion(
                    id=sample.id,
                    source_id=source.id,
                    dimension=sample.dimension,
                    answer=sample.answer,
                    template=rationale_text(source_labels.labels, sample.dimension, notes=False),
                    prompt=teacher_prompt(sample.dimension, sample.answer),
                    images=[str(p) for p in paths],
                )
            )
    return found


class _Opened:
    """A question whose images are opened only when the teacher is asked (never all at once)."""

    def __init__(self, question: TeacherQuestion):
        self.question = question
        self.id = question.id
        self.prompt = question.prompt

    @property
    def images(self) -> list[Any]:
        from PIL import Image

        return [Image.open(path).convert("RGB") for path in self.question.images]


def teacher_rationales(
    workspace: Workspace,
    config: CotConfig,
    teacher: Any = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[int], None] | None = None,
) -> CotReport:
    """Ask the teacher about every question without a stored answer for its current gold; store each reply."""
    report = CotReport()
    every = questions(workspace, config)
    report.questions = len(every)
    if not every:
        raise MedgenError(
            "no question to explain: the workspace has no labelled source yet "
            "(pull annotations first, or use --labels injected for synthetic candidates)"
        )
    stored = {r["sample_id"]: (r["answer"], r["status"]) for r in rationales(workspace, TEACHER)}

    def done(q: TeacherQuestion) -> bool:
        answer, status = stored.get(q.id, (None, None))
        return answer == q.answer and (status == ACCEPTED or not config.retry_rejected)

    todo = [q for q in every if not done(q)]
    report.skipped = len(every) - len(todo)
    todo = todo[: config.limit] if config.limit else todo
    if on_start:
        on_start(len(todo))
    if not todo:
        report.report_path = write_report(workspace)
        return report
    teacher = teacher if teacher is not None else answering_model(config)
    by_id = {q.id: q for q in todo}
    for opened, raw in teacher.generate([_Opened(q) for q in todo]):
        question = by_id[opened.id]
        rationale, reason = validate(raw, question, config)
        save_rationale(
            workspace,
            sample_id=question.id,
            source_id=question.source_id,
            dimension=question.dimension,
            origin=TEACHER,
            model=config.model,
            answer=question.answer,
            status=ACCEPTED if rationale else REJECTED,
            text=rationale,
            reason=reason or None,
        )
        report.asked += 1
        if rationale:
            report.accepted += 1
        else:
            report.rejected[reason.kind if isinstance(reason, Rejection) else reason] += 1
        if on_done:
            on_done(1)
    report.report_path = write_report(workspace)
    return report


def write_report(workspace: Workspace) -> Path:
    """Every teacher rationale in the catalog that was rejected, with its reason, and the totals."""
    rows = [
        {k: r[k] for k in ("sample_id", "source_id", "dimension", "model", "answer", "reason")}
        for r in rationales(workspace, TEACHER, REJECTED)
    ]
    totals = rationale_totals(workspace, TEACHER)
    models = sorted({r["model"] for r in rationales(workspace, TEACHER)})
    body = {
        "written_at": now(),
        "teacher_models": models,
        "totals": totals,
        "rejected": rows,
    }
    path = workspace.reports_dir / REPORT
    atomic_write_text(path, json.dumps(body, indent=1) + "\n")
    return path
