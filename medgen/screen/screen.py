"""`medgen screen`: the trained screener on new generations, before anyone publishes them.

Each source and its candidates (up to four per group, as in the benchmark) get the benchmark's five
questions: one per defect dimension ("which images are unreasonable?") and the overall one ("which are
acceptable to publish?"). With ``samples`` K > 1 each question is sampled K times; a candidate's
share of samples naming it is its probability, so

- **verdict**: publishable when the share of "acceptable" answers naming it reaches ``threshold``;
  **confidence** is the share that agrees with the verdict (self-consistency);
- **defective dimensions**: those whose share reaches ``threshold``, each with the model's own
  words about that candidate (its ``Image X: ...`` line of reasoning, else the whole reasoning).

Fewer than four candidates fill the remaining slots with copies of the last one (their letters are
ignored). Model outputs are cached per question in the output folder, so an interrupted run resumes
without asking again; results are written at the end as ``screen.jsonl``, ``screen.csv`` and
``contact_sheet.html`` (thumbnails beside it, so the folder can be shared).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from annotation.tables import annotated_sources
from medgen.errors import MedgenError
from medgen.files import atomic_write_text
from medgen.inference.answering import answering_model
from medgen.inference.cache import cache_path, generate_cached
from medgen.inference.checkpoint import wants_boxes
from medgen.screen.config import ScreenConfig
from schemas.taxonomy import LETTERS, NUM_CANDIDATES, OVERALL, QUESTION_DIMENSIONS, TAXONOMY

DIMENSIONS = tuple(d for d in QUESTION_DIMENSIONS if d != OVERALL)
THUMB_SIZE = 256


@dataclass
class Group:
    """A source and up to four of its candidates, screened together as one benchmark question set."""

    key: str  # stable over reruns: the source and candidate ids
    source_id: str
    source: Path
    candidates: list[tuple[str, Path]]  # (candidate id, image path)
    checks: Any = None  # the same source and candidates for `medgen check` (``medgen.checks.check.Group``)


class CandidateVerdict(BaseModel):
    """The screener's view of one candidate."""

    candidate: str
    source: str
    letter: str
    path: str
    verdict: str = Field(description="publishable, reject, or unknown (no sample parsed).")
    publishable: bool | None
    confidence: float | None = Field(
        description="Share of samples agreeing with the verdict (None with one sample, or no readable answer)."
    )
    p_publishable: float | None = Field(description="Share of parsed samples calling it acceptable.")
    defects: dict[str, float | None] = Field(description="Per dimension: share of samples flagging it.")
    defective_dimensions: list[str]
    reasons: dict[str, str] = Field(
        description="The model's words about this candidate, per flagged question."
    )
    samples: int
    unparsed: int = Field(description="Samples whose answer could not be read, over the five questions.")
    checks: list[dict[str, Any]] | None = Field(
        default=None, description="The automatic checks' findings (`medgen check`); None when not run."
    )
    boxes: dict[str, list[list[float]]] = Field(
        default_factory=dict,
        description="Per flagged dimension, where the model says the defect is (x0, y0, x1, y1 in fractions of "
        "the image; a point when x0 == x1 and y0 == y1): only from a model asked for boxes (answer_boxes).",
    )
    conflicts: list[str] = Field(
        default_factory=list,
        description="Where the verdict disagrees with the model's own dimension answers or with the checks: "
        "a verdict with conflicts is not to be trusted as it stands.",
    )


# ---- inputs -----------------------------------------------------------------------------------------


def _check_image(path: Path) -> None:
    if not path.is_file():
        raise MedgenError(f"no such image file: {path}")
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise MedgenError(f"cannot read {path} as an image ({type(error).__name__}): {error}") from None


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def groups_from_files(source: Path, candidates: Sequence[Path]) -> list[Group]:
    """A source photo and its candidate files, four per group; bad files fail here in one line."""
    from medgen.checks.check import files_group

    if not candidates:
        raise MedgenError(
            "give the source photo, then at least one candidate image: medgen screen SOURCE CAND..."
        )
    for path in (source, *candidates):
        _check_image(path)
    source_id = _file_digest(source)
    ids = [(_file_digest(path), path) for path in candidates]
    groups = []
    for start in range(0, len(ids), NUM_CANDIDATES):
        chunk = ids[start : start + NUM_CANDIDATES]
        key = hashlib.sha256("/".join([source_id, *(i for i, _ in chunk)]).encode()).hexdigest()[:16]
        paths = [path for _, path in chunk]
        groups.append(Group(key, source_id, source, [(str(p), p) for p in paths], files_group(source, paths)))
    return groups


def groups_from_workspace(workspace: Any, limit: int | None = None) -> list[Group]:
    """Sources whose candidates nobody has annotated yet, in catalog order."""
    from medgen.checks.check import source_group

    annotated = set(annotated_sources(workspace))
    groups = []
    for source in workspace.catalog.sources():
        if source.id in annotated:
            continue
        candidates = sorted(workspace.catalog.candidates(source.id), key=lambda c: c.slot)
        if not candidates:
            continue
        chunk = [(c.id, workspace.store.path(c.image_key)) for c in candidates]
        key = hashlib.sha256("/".join([source.id, *(c.id for c in candidates)]).encode()).hexdigest()[:16]
        checks = source_group(workspace, source, candidates)
        groups.append(Group(key, source.id, workspace.store.path(source.image_key), chunk, checks))
        if limit and len(groups) >= limit:
            break
    return groups


# ---- asking the model -----------------------------------------------------------------------------


def questions_for(groups: Sequence[Group], samples: int, boxes: bool = False) -> list[Any]:
    """Each group's five questions, ``samples`` times each; images padded to four candidates. ``boxes``: the
    dimension questions ask where the defects are too (the answer variant with boxes)."""
    from schemas.prompts import prompt_messages, question_text, with_box_instruction
    from training.evaluation.metrics import Question

    questions = []
    for group in groups:
        images = [Image.open(group.source).convert("RGB")]
        images += [Image.open(path).convert("RGB") for _, path in group.candidates]
        images += [images[-1]] * (NUM_CANDIDATES + 1 - len(images))
        for dimension in QUESTION_DIMENSIONS:
            prompt = prompt_messages(question_text(dimension))
            if boxes and dimension != OVERALL:
                prompt = with_box_instruction(prompt)
            for k in range(samples):
                questions.append(
                    Question(
                        id=f"{group.key}/{dimension}/{k}",
                        source_id=group.source_id,
                        dimension=dimension,
                        answer="",
                        prompt=prompt,
                        images=images,
                    )
                )
    return questions


def reason_for(raw: str, letter: str) -> str:
    """The model's words about one candidate: its ``Image X: ...`` line, else the whole reasoning."""
    think = re.search(r"<think>(.*?)(?:</think>|$)", raw, re.DOTALL | re.IGNORECASE)
    text = (think.group(1) if think else raw).strip()
    line = re.search(rf"(?:^|\n)\s*(?:Image\s+)?{letter}\s*[:.)-]\s*(.+)", text)
    reason = line.group(1).strip() if line else text
    return reason[:500]


def verdicts(
    groups: Sequence[Group],
    raw: dict[str, str],
    config: ScreenConfig,
    checks: dict[str, list[dict[str, Any]]] | None = None,
) -> list[CandidateVerdict]:
    """Aggregate each candidate's samples into its verdict, confidence, flagged dimensions and reasons;
    ``checks`` (candidate id -> findings) go beside it, and every disagreement is listed in ``conflicts``."""
    from schemas.regions import parse_boxes
    from training.rewards import parse_answer

    results = []
    for group in groups:
        answers: dict[str, list[tuple[set[str] | None, str]]] = {}
        for dimension in QUESTION_DIMENSIONS:
            texts = [raw.get(f"{group.key}/{dimension}/{k}", "") for k in range(config.samples)]
            answers[dimension] = [(parse_answer(text), text) for text in texts]
        for (candidate_id, path), letter in zip(group.candidates, LETTERS, strict=False):
            shares: dict[str, float | None] = {}
            reasons: dict[str, str] = {}
            boxes: dict[str, list[list[float]]] = {}
            for dimension, parsed in answers.items():
                readable = [(letters, text) for letters, text in parsed if letters is not None]
                naming = [text for letters, text in readable if letter in letters]
                shares[dimension] = len(naming) / len(readable) if readable else None
                if dimension != OVERALL and naming and len(naming) / len(readable) >= config.threshold:
                    reasons[dimension] = reason_for(naming[0], letter)  # why it is unreasonable
                    named = next((found for t in naming if (found := parse_boxes(t).get(letter))), [])
                    if named:  # the first sample naming it that also says where
                        boxes[dimension] = [list(region.box) for region in named]
            p_publishable = shares.pop(OVERALL)
            if p_publishable is None:
                verdict, publishable, confidence = "unknown", None, None
            else:
                publishable = p_publishable >= config.threshold
                verdict = "publishable" if publishable else "reject"
                confidence = p_publishable if publishable else 1 - p_publishable
                if config.samples == 1:
                    confidence = None  # one sample agrees with itself: no confidence to report
            if publishable is False:  # why not publishable: a sample that left it out of the acceptable ones
                text = next(
                    t for letters, t in answers[OVERALL] if letters is not None and letter not in letters
                )
                reasons[OVERALL] = reason_for(text, letter)
            unparsed = sum(letters is None for parsed in answers.values() for letters, _ in parsed)
            flagged = [d for d in DIMENSIONS if (shares[d] or 0) >= config.threshold]
            found = None if checks is None else checks.get(candidate_id)
            results.append(
                CandidateVerdict(
                    candidate=candidate_id,
                    source=group.source_id,
                    letter=letter,
                    path=str(path),
                    verdict=verdict,
                    publishable=publishable,
                    confidence=None if confidence is None else round(confidence, 4),
                    p_publishable=None if p_publishable is None else round(p_publishable, 4),
                    defects={d: None if s is None else round(s, 4) for d, s in shares.items()},
                    defective_dimensions=flagged,
                    reasons=reasons,
                    samples=config.samples,
                    unparsed=unparsed,
                    checks=found,
                    boxes={d: b for d, b in boxes.items() if d in flagged},
                    conflicts=conflicts(publishable, flagged, found or []),
                )
            )
    return results


def conflicts(publishable: bool | None, flagged: Sequence[str], found: Sequence[dict[str, Any]]) -> list[str]:
    """How a verdict disagrees with the model's own dimension answers and with the automatic checks."""
    names = {d.id: d.label.lower() for d in TAXONOMY.dimensions}
    said = []
    if publishable and flagged:
        said.append("publishable, yet the model flags " + ", ".join(names[d] for d in flagged))
    if publishable is False and not flagged:
        said.append("rejected, yet the model flags no dimension")
    if publishable and found:
        said.append(
            "publishable, yet the checks found "
            + ", ".join(
                f"{f['tag']} ({f['check']} {f['value']:g}, threshold {f['threshold']:g})" for f in found
            )
        )
    return said


# ---- outputs --------------------------------------------------------------------------------------


def write_outputs(
    results: list[CandidateVerdict], groups: Sequence[Group], config: ScreenConfig
) -> dict[str, Path]:
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "screen.jsonl"
    atomic_write_text(jsonl, "".join(r.model_dump_json() + "\n" for r in results))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(
        ["candidate", "source", "letter", "path", "verdict", "confidence", "p_publishable"]
        + [f"p_{d}" for d in DIMENSIONS]
        + ["defective_dimensions", "reasons", "checks", "conflicts"]
    )
    for r in results:
        writer.writerow(
            [r.candidate, r.source, r.letter, r.path, r.verdict, _num(r.confidence), _num(r.p_publishable)]
            + [_num(r.defects[d]) for d in DIMENSIONS]
            + [";".join(r.defective_dimensions), " | ".join(f"{k}: {v}" for k, v in r.reasons.items())]
            + ["" if r.checks is None else ";".join(f["tag"] for f in r.checks), " | ".join(r.conflicts)]
        )
    csv_path = out / "screen.csv"
    atomic_write_text(csv_path, table.getvalue())
    sheet = out / "contact_sheet.html"
    atomic_write_text(sheet, contact_sheet(results, groups, config))
    return {"jsonl": jsonl, "csv": csv_path, "contact sheet": sheet}


def _box_marks(boxes: dict[str, list[list[float]]], names: dict[str, str]) -> str:
    """The model's boxes over a thumbnail: positioned in percent of the image, named by dimension."""
    marks = []
    for dimension, found in boxes.items():
        for x0, y0, x1, y1 in found:
            point = x0 == x1 and y0 == y1
            size = "" if point else f"width:{100 * (x1 - x0):.2f}%;height:{100 * (y1 - y0):.2f}%;"
            marks.append(
                f'<div class="box{" point" if point else ""}" style="left:{100 * x0:.2f}%;top:{100 * y0:.2f}%;'
                f'{size}"><span>{html.escape(names.get(dimension, dimension))}</span></div>'
            )
    return "".join(marks)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _thumb(path: Path, out: Path) -> str:
    from medgen.checks.sheet import thumbnail

    return thumbnail(path, out, size=THUMB_SIZE)


def contact_sheet(results: list[CandidateVerdict], groups: Sequence[Group], config: ScreenConfig) -> str:
    """A standalone HTML page: each source, its candidates, verdict badges and the model's reasons."""
    names = {d.id: d.label for d in TAXONOMY.dimensions}
    names[OVERALL] = "Not publishable"
    in_order = iter(results)  # verdicts come group by group, candidate by candidate
    rows = []
    for group in groups:
        cells = [
            f'<figure class="source"><img src="{_thumb(group.source, config.output_dir)}" alt="source">'
            f"<figcaption>source {html.escape(group.source_id[:12])}</figcaption></figure>"
        ]
        for _, path in group.candidates:
            r = next(in_order)
            badge = {"publishable": "ok", "reject": "bad"}.get(r.verdict, "unknown")
            confidence = "" if r.confidence is None else f" {r.confidence:.0%}"
            if r.conflicts:  # not as certain as it looks: say so instead of showing a confidence
                badge, confidence = "warn", "?"
            reasons = "".join(
                f"<li><b>{html.escape(names.get(d, d))}</b>"
                f"{'' if r.defects.get(d) is None else f' ({r.defects[d]:.0%})'}: {html.escape(text)}</li>"
                for d, text in r.reasons.items()
            )
            reasons += "".join(
                f'<li class="check"><b>Check: {html.escape(f["tag"])}</b> {html.escape(f["check"])} '
                f"{f['value']:g} (threshold {f['threshold']:g})</li>"
                for f in r.checks or []
            )
            reasons += "".join(f'<li class="conflict">{html.escape(text)}</li>' for text in r.conflicts)
            cells.append(
                f'<figure class="candidate"><div class="frame"><img src="{_thumb(path, config.output_dir)}" '
                f'alt="{r.letter}">{_box_marks(r.boxes, names)}</div>'
                f'<figcaption><span class="badge {badge}">{r.letter}: {r.verdict}{confidence}</span>'
                f"<ul>{reasons}</ul></figcaption></figure>"
            )
        rows.append(f'<section class="group">{"".join(cells)}</section>')
    counts = {v: sum(r.verdict == v for r in results) for v in ("publishable", "reject", "unknown")}
    where = config.endpoint or "checkpoint"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medgen screen: {html.escape(config.model)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
.group{{display:flex;gap:.8rem;align-items:flex-start;border-bottom:1px solid #ddd;padding:.8rem 0}}
figure{{margin:0;width:{THUMB_SIZE}px}} img{{max-width:100%;border-radius:4px}}
.source img{{outline:3px solid #888}} ul{{margin:.3rem 0;padding-left:1.1rem;font-size:.85rem}}
.badge{{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-weight:600;color:#fff}}
.ok{{background:#1a7f37}} .bad{{background:#c62828}} .unknown{{background:#777}} .warn{{background:#b26a00}}
.conflict{{color:#b26a00;font-weight:600}} .check{{color:#444}}
.frame{{position:relative;display:inline-block;line-height:0}} .box{{position:absolute;border:2px solid #e53935;box-sizing:border-box}}
.box.point{{width:12px;height:12px;margin:-6px 0 0 -6px;border-radius:50%}}
.box span{{position:absolute;top:-1.1rem;left:-2px;background:#e53935;color:#fff;font-size:.7rem;line-height:1rem;
padding:0 .25rem;white-space:nowrap}}
</style></head><body>
<h1>Screening: {html.escape(config.model)}</h1>
<p>{html.escape(where)}; {config.samples} sample(s) per question at temperature {config.temperature:g}; threshold
{config.threshold:g}. {counts["publishable"]} publishable, {counts["reject"]} rejected, {counts["unknown"]} unknown
(no readable answer). Percentages: share of samples. An amber "?" badge: the verdict disagrees with the model's own
dimension answers or with the automatic checks (listed under it); "Check:" lines are `medgen check`'s findings.</p>
{"".join(rows)}
</body></html>
"""


# ---- the run --------------------------------------------------------------------------------------


def run_checks(groups: Sequence[Group]) -> dict[str, list[dict[str, Any]]]:
    """`medgen check` on the screened candidates, with its default settings: candidate id -> findings."""
    from medgen.checks.check import run_groups
    from medgen.checks.config import CheckConfig

    found: dict[str, list[dict[str, Any]]] = {}

    def keep(records: list[dict[str, Any]]) -> None:
        found.update({r["candidate"]: r["findings"] for r in records})

    total = sum(len(g.candidates) for g in groups)
    run_groups(iter(g.checks for g in groups if g.checks is not None), CheckConfig(), total, keep)
    return found


def screen(
    groups: Sequence[Group],
    config: ScreenConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[CandidateVerdict], dict[str, Path]]:
    """Screen ``groups``; answers already in the output folder's cache are not asked again."""
    if not groups:
        raise MedgenError("nothing to screen: no candidates given, or every workspace source is annotated")
    boxes = wants_boxes(config)
    questions = questions_for(groups, config.samples, boxes)
    model = answering_model(config)
    details = {**model.details(), "max_new_tokens": config.max_new_tokens, "samples": config.samples}
    if boxes:
        details["answer_boxes"] = True
    cache = cache_path(config.output_dir, "screen", details)
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if on_progress:
            on_progress(done, len(questions))

    raw = generate_cached(questions, model.generate, cache, on_done=advance)
    results = verdicts(groups, raw, config, run_checks(groups) if config.checks else None)
    atomic_write_text(
        config.output_dir / "screen_config.json",
        json.dumps({**details, "model": config.model, "threshold": config.threshold}, indent=2),
    )
    return results, write_outputs(results, groups, config)
