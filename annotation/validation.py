"""Parse every export shape Label Studio produces and check each annotation against the taxonomy.

Label Studio stores whatever the front end (or an API client) sends: unknown controls and values,
two values in a single choice, missing required answers, empty results. medgen checks each one
and gives it a status with reasons; only ``valid`` annotations reach consensus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from annotation.config import (
    ACCEPTABLE,
    NO,
    NOTE,
    RATIONALE,
    REGION_TYPES,
    YES,
    Control,
    controls,
    region_label,
)
from schemas import LETTERS, TAXONOMY, CandidateLabel
from schemas.regions import Region, region_kinds

EDGE_SLACK = 0.5
"""Percent a region may pass its image's edge by (the page's rounding) before it counts as outside."""

VALID = "valid"
CANCELLED = "cancelled"  # skipped by the annotator
INVALID = "invalid"  # unknown control or value, two values in a single choice
INCOMPLETE = "incomplete"  # a candidate without its acceptable answer, or an empty result
CONTRADICTORY = "contradictory"  # acceptable with a defect, or not acceptable without one
DELETED = "deleted"  # pulled earlier, deleted in Label Studio since
FOREIGN = "foreign"  # made by someone other than the annotator whose queue holds the task
DUPLICATE = "duplicate"  # an earlier annotation by the same person on the same task
LOST = "lost"  # pulled earlier, gone with an older backup of Label Studio's database: repair imports it again
REJECTED = "rejected"  # a reviewer (or the gold check) rejected it; its task went back to its author
RESTORED = "restored"  # a lost answer that `annotate repair` imported again (its new copy counts)
STATUSES = (VALID, CANCELLED, INVALID, INCOMPLETE, CONTRADICTORY, DELETED, FOREIGN, DUPLICATE)

# Keys of a JSON_MIN row that are task data or metadata, not controls.
_MIN_META = {
    "id",
    "annotator",
    "annotation_id",
    "created_at",
    "updated_at",
    "lead_time",
    "source_id",
    "source",
    "original",
    "votes",
}


@dataclass
class RawAnnotation:
    """One annotation as exported, whatever the export shape."""

    id: int
    task_id: int
    result: list[dict[str, Any]]
    cancelled: bool = False
    project_id: int | None = None
    source_id: str | None = None
    lead_time: float | None = None
    created_at: str | None = None
    updated_at: str | None = None
    completed_by: int | None = None  # Label Studio user id of whoever made it


@dataclass
class Checked:
    status: str
    reasons: list[str] = field(default_factory=list)
    labels: tuple[CandidateLabel, ...] | None = None


def parse_export(payload: Any) -> list[RawAnnotation]:
    """Annotations from a JSON export, a JSON_MIN export, an API task list or an API annotation list."""
    if isinstance(payload, dict):
        for key in ("tasks", "results", "annotations"):
            if isinstance(payload.get(key), list):
                return parse_export(payload[key])
        raise ValueError("unrecognised Label Studio export: a JSON object without a 'tasks' list")
    if not isinstance(payload, list):
        raise ValueError("unrecognised Label Studio export: expected a JSON list")
    found: list[RawAnnotation] = []
    for item in payload:
        if not isinstance(item, dict):
            raise ValueError("unrecognised Label Studio export: list items must be JSON objects")
        if "annotations" in item and "data" in item:  # JSON export / API task
            data = item.get("data") or {}
            for annotation in item["annotations"] or []:
                found.append(_from_api(annotation, task_id=int(item["id"]), source_id=data.get("source_id")))
        elif "result" in item and "task" in item:  # API annotation list
            found.append(_from_api(item, task_id=int(item["task"]), source_id=None))
        elif "annotation_id" in item:  # JSON_MIN: one flat row per annotation
            found.append(_from_min(item))
        elif "data" in item:  # a task nobody annotated yet
            continue
        else:
            raise ValueError(f"unrecognised Label Studio export row with keys {sorted(item)[:8]}")
    return found


def canonical_time(value: Any) -> str | None:
    """A Label Studio timestamp as its API writes it (ISO 8601, UTC as 'Z'), whichever source it came from.

    The database stores naive UTC ('2026-01-02 03:04:05.123456'); the API and exports write
    '2026-01-02T03:04:05.123456Z'. One form keeps re-pulls idempotent whichever path read them.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _task_id(value: Any) -> int:
    return int(value["id"] if isinstance(value, dict) else value)


def _user_id(value: Any) -> int | None:
    """``completed_by`` as the API (an id) or the JSON export (an id, or a user object) writes it."""
    if isinstance(value, dict):
        value = value.get("id")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _from_api(annotation: dict[str, Any], task_id: int, source_id: str | None) -> RawAnnotation:
    project = annotation.get("project")
    return RawAnnotation(
        id=int(annotation["id"]),
        task_id=_task_id(annotation.get("task", task_id) or task_id),
        result=list(annotation.get("result") or []),
        cancelled=bool(annotation.get("was_cancelled")),
        project_id=int(project) if isinstance(project, int) else None,
        source_id=source_id,
        lead_time=annotation.get("lead_time"),
        created_at=canonical_time(annotation.get("created_at")),
        updated_at=canonical_time(annotation.get("updated_at")),
        completed_by=_user_id(annotation.get("completed_by")),
    )


def _from_min(row: dict[str, Any]) -> RawAnnotation:
    """JSON_MIN writes each control as a key: a string for one value, a list or {'choices': [...]} for many."""
    known_data = set(LETTERS)
    result = []
    spec = controls()
    for key, value in row.items():
        if key in _MIN_META or key in known_data:
            continue
        region_kind = spec[key].kind if key in spec and spec[key].kind in REGION_TYPES.values() else None
        if region_kind is not None:  # a list of regions, each its value as the JSON export writes it
            for region in value if isinstance(value, list) else [value]:
                result.append({"from_name": key, "type": region_kind, "value": region})
            continue
        if isinstance(value, dict):
            kind = "textarea" if "text" in value else "choices"
            values = value.get("text", value.get("choices", []))
        else:
            kind = "textarea" if key.endswith((f"_{RATIONALE}", f"_{NOTE}")) else "choices"
            values = value if isinstance(value, list) else [value]
        result.append(
            {"from_name": key, "type": kind, "value": {("text" if kind == "textarea" else "choices"): values}}
        )
    return RawAnnotation(
        id=int(row["annotation_id"]),
        task_id=int(row["id"]),
        result=result,
        source_id=row.get("source_id"),
        lead_time=row.get("lead_time"),
        created_at=canonical_time(row.get("created_at")),
        updated_at=canonical_time(row.get("updated_at")),
        completed_by=_user_id(row.get("annotator")),
    )


def check(annotation: RawAnnotation, require_regions: bool = False) -> Checked:
    """Status, reasons and (when valid) the four candidate labels of one annotation.

    ``require_regions``: its queue asks for a region for every tag that can be marked (`push --require-regions`).
    """
    if annotation.cancelled:
        return Checked(CANCELLED, ["the annotator skipped (cancelled) the task"])
    if not annotation.result:
        return Checked(INCOMPLETE, ["empty result: nothing was answered"])
    answers = _read(annotation.result)
    if answers.invalid:
        return Checked(INVALID, answers.invalid)
    return _judge(answers, require_regions)


@dataclass
class _Answers:
    """What one annotation's result says, control by control, before its consistency is judged."""

    invalid: list[str] = field(default_factory=list)  # results no control of the config can hold
    acceptable: dict[str, bool] = field(default_factory=dict)  # letter -> "No defects" ticked
    tags: dict[str, list[str]] = field(default_factory=lambda: {letter: [] for letter in LETTERS})
    texts: dict[tuple[str, str], str] = field(default_factory=dict)  # (letter, part) -> note
    regions: dict[str, list[Region]] = field(default_factory=lambda: {letter: [] for letter in LETTERS})


def _read(result: list[dict[str, Any]]) -> _Answers:
    """Each result item into its control's answer; items no control can hold are ``invalid``."""
    spec = controls()
    answers = _Answers()
    seen: set[str] = set()
    for item in result:
        name = str(item.get("from_name", ""))
        control = spec.get(name)
        if control is None:
            answers.invalid.append(f"unknown control {name!r} (not in the labeling config)")
            continue
        value = item.get("value") or {}
        if control.kind in REGION_TYPES.values():  # a control holds any number of regions
            _read_region(name, control, value, answers)
            continue
        if name in seen:
            answers.invalid.append(f"{name} answered twice")
            continue
        seen.add(name)
        if control.kind == "textarea":
            words = value.get("text", [])
            answers.texts[control.letter, control.part] = " ".join(
                str(w) for w in (words if isinstance(words, list) else [words])
            ).strip()
            continue
        chosen = value.get("choices", [])
        chosen = chosen if isinstance(chosen, list) else [chosen]
        unknown = [str(c) for c in chosen if c not in control.values]
        if unknown:
            what = "answer" if control.part == ACCEPTABLE else f"tag(s) for {control.part}"
            answers.invalid.append(f"{name}: unknown {what} {', '.join(repr(u) for u in unknown)}")
        elif control.single and len(chosen) > 1:
            answers.invalid.append(f"{name}: {len(chosen)} values ({', '.join(chosen)}) in a single choice")
        elif control.part == ACCEPTABLE:
            if chosen:
                answers.acceptable[control.letter] = chosen[0] == YES
        else:
            answers.tags[control.letter].extend(chosen)
    return answers


def _read_region(name: str, control: Control, value: dict[str, Any], answers: _Answers) -> None:
    """One rectangle or point (percent of the image, a tag's label) into the candidate's regions."""
    labels = value.get(control.kind, [])
    labels = labels if isinstance(labels, list) else [labels]
    names = {region_label(tag): tag for tag in control.values} | {tag: tag for tag in control.values}
    if len(labels) != 1 or labels[0] not in names:
        answers.invalid.append(f"{name}: a region needs one defect tag of its kind; got {labels!r}")
        return
    try:
        x, y = float(value["x"]), float(value["y"])
        width, height = (
            (float(value["width"]), float(value["height"])) if control.part == "box" else (0.0, 0.0)
        )
    except (KeyError, TypeError, ValueError):
        answers.invalid.append(f"{name}: a region without its position (x, y, width, height)")
        return
    if float(value.get("rotation") or 0) % 360:
        answers.invalid.append(f"{name}: a rotated box (medgen keeps boxes upright)")
        return
    low, high = -EDGE_SLACK, 100 + EDGE_SLACK
    if min(x, y, width, height) < low or x + width > high or y + height > high:
        answers.invalid.append(
            f"{name}: a {labels[0]} region outside its image ({x:.1f}, {y:.1f}, {width:.1f}, {height:.1f} %)"
        )
        return
    box = tuple(min(max(v / 100, 0.0), 1.0) for v in (x, y, x + width, y + height))
    answers.regions[control.letter].append(Region(tag=names[labels[0]], box=box))  # type: ignore[arg-type]


def _judge(answers: _Answers, require_regions: bool = False) -> Checked:
    """The labels of answers every control could hold: complete, notes where needed, not contradictory."""
    acceptable, tags, texts = answers.acceptable, answers.tags, answers.texts
    # "No defects" ticked: acceptable; tags without it: not acceptable (the form derives it).
    for letter in LETTERS:
        if letter not in acceptable and tags[letter]:
            acceptable[letter] = False
    missing = [letter for letter in LETTERS if letter not in acceptable]
    if missing:
        return Checked(
            INCOMPLETE,
            [
                f"{letter} has no acceptable answer: neither 'No defects' nor a defect tag"
                for letter in missing
            ],
        )
    unexplained = [
        f"{letter}: 'Other' in {dimension.label.lower()} needs a note saying what is wrong"
        for letter in LETTERS
        for dimension in TAXONOMY.dimensions
        for tag in dimension.tags
        if tag.needs_note and tag.id in tags[letter] and not texts.get((letter, f"{dimension.id}_{NOTE}"))
    ]
    if unexplained:
        return Checked(INCOMPLETE, unexplained)
    contradictions = []
    for letter in LETTERS:
        if acceptable[letter] and tags[letter]:
            contradictions.append(f"{letter} is marked acceptable but tagged {', '.join(tags[letter])}")
        if not acceptable[letter] and not tags[letter]:
            contradictions.append(f"{letter} is marked not acceptable ({NO}) without any defect tag")
        stray = sorted({region.tag for region in answers.regions[letter]} - set(tags[letter]))
        if stray:
            contradictions.append(f"{letter} has a region for {', '.join(stray)} but is not tagged with it")
    if contradictions:
        return Checked(CONTRADICTORY, contradictions)
    if require_regions:
        unplaced = [
            f"{letter}: {tag} has no region (this queue asks for one per tag)"
            for letter in LETTERS
            for tag in tags[letter]
            if region_kinds()[tag] is not None and tag not in {r.tag for r in answers.regions[letter]}
        ]
        if unplaced:
            return Checked(INCOMPLETE, unplaced)
    labels = tuple(
        CandidateLabel(
            defects=tuple(tags[letter]),
            acceptable=acceptable[letter],
            rationale=_rationale(letter, texts),
            regions=tuple(answers.regions[letter]),
        )
        for letter in LETTERS
    )
    return Checked(VALID, [], labels)


def _rationale(letter: str, texts: dict[tuple[str, str], str]) -> str:
    """The candidate's free text: its rationale, then each "Other" note with its dimension."""
    parts = [texts.get((letter, RATIONALE), "")]
    for dimension in TAXONOMY.dimensions:
        note = texts.get((letter, f"{dimension.id}_{NOTE}"), "")
        if note and note not in parts:
            parts.append(f"other {dimension.label.lower()}: {note}")
    return "; ".join(part for part in parts if part)
