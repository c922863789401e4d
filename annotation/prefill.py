"""Pre-annotation: each task pushed with a screener's answers, which annotators verify instead of starting blank.

Where pre-fills come from (``annotate push --predictions SPEC``):

- ``simulated``: a simulated screener, the known labels of synthetic candidates with screener-like
  errors; its score is lower on the tasks it got wrong (a calibrated screener), so ordering by
  uncertainty has something to find;
- ``screen:PATH``: the ``screen.jsonl`` that ``medgen screen -w WS`` wrote, from a checkpoint or any
  endpoint. A candidate's flagged dimensions become the tags its reason names (tag labels), else that
  dimension's "Other" tag with the reason as the note; a rejected candidate with no flagged dimension
  gets the "Other" tag of its most likely one; a publishable one gets "No defects";
- ``checks``: the automatic checks (``medgen check``; run first on the sources not yet checked): a candidate
  with findings gets their tags (the measured value and threshold as its note), one without "No defects";
  the score is the lowest confidence of the findings (a clean task has none);
- ``model:CHECKPOINT`` and ``endpoint:NAME`` (the model NAME at ``$OPENAI_BASE_URL``): run a screener
  on the workspace first, then read its output as above. The screener is an app above this stage
  (``medgen.screen``), so it comes in as a dependency: ``push(..., screener=...)`` (``Screener``).

The pre-fill of each source is stored in the catalog (``prefills``) when its tasks are planned, so
``annotate agreement`` can report what annotators kept, changed, added or removed, per dimension.
Gold tasks get the same kind of pre-fill as any other, so nothing marks them out.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from annotation.consensus import labels_from_json, labels_to_json
from annotation.noise import Noise, noisy_label
from annotation.tables import prefill_rows, save_prefills
from medgen.errors import MedgenError
from medgen.workspace import Workspace
from schemas import LETTERS, NUM_CANDIDATES, TAXONOMY, Candidate, CandidateLabel
from schemas.regions import Region, region_kinds

SIMULATED = "simulated"
SIMULATED_MODEL = "medgen-simulated-screener"
CHECKS = "checks"
CHECKS_MODEL = "medgen-checks"
SIMULATED_NOISE = Noise(missed_tag=0.1, extra_tag=0.05, flipped=0.1, skip=0.0)

BASE_URL_ENV = "OPENAI_BASE_URL"


class Screener(Protocol):
    """Screens the workspace's candidates nobody annotated yet with ``model`` (at ``endpoint`` when given)
    and returns the ``screen.jsonl`` it wrote (``medgen.screen.cli.screen_for_prefill``)."""

    def __call__(self, workspace: Workspace, model: str, endpoint: str | None = None) -> Path: ...


@dataclass(frozen=True)
class Prefill:
    labels: tuple[CandidateLabel, ...]
    score: float | None  # the screener's confidence in the task (lowest over its candidates)
    model_version: str

    def without_regions(self) -> Prefill:
        if not any(label.regions for label in self.labels):
            return self
        labels = tuple(label.model_copy(update={"regions": ()}) for label in self.labels)
        return Prefill(labels, self.score, self.model_version)


def known_labels(candidates: list[Candidate]) -> tuple[CandidateLabel, ...] | None:
    """Ground-truth labels from injected defects, or None when any candidate's are unknown."""
    if len(candidates) != NUM_CANDIDATES or any(c.injected_defects is None for c in candidates):
        return None
    return tuple(c.injected_label() for c in candidates)


def simulated_prefill(source_id: str, candidates: list[Candidate]) -> Prefill | None:
    """The simulated screener's answer for one task: known labels with errors, fixed per source."""
    truth = known_labels(candidates)
    if truth is None:
        return None
    rng = random.Random(f"screener/{source_id}")
    guesses = tuple(noisy_label(label, SIMULATED_NOISE, rng) for label in truth)
    labels = tuple(CandidateLabel(defects=g.defects, acceptable=g.acceptable) for g in guesses)
    wrong = sum(guess.defects != label.defects for guess, label in zip(labels, truth, strict=True))
    score = min(0.99, max(0.05, 0.9 - 0.3 * wrong + rng.uniform(-0.1, 0.1)))
    return Prefill(labels, round(score, 3), SIMULATED_MODEL)


def _label_from_screen(record: dict[str, object]) -> CandidateLabel:
    """One candidate's screen record as the tags a person would have ticked."""
    if record.get("verdict") == "publishable" and not record.get("defective_dimensions"):
        return CandidateLabel(acceptable=True)
    reasons: dict[str, str] = dict(record.get("reasons") or {})  # type: ignore[arg-type]
    dimensions = list(record.get("defective_dimensions") or [])  # type: ignore[arg-type]
    if not dimensions:
        if record.get("verdict") != "reject":
            return CandidateLabel(acceptable=True)
        shares: dict[str, float] = {k: v or 0.0 for k, v in dict(record.get("defects") or {}).items()}  # type: ignore[arg-type]
        dimensions = [max(shares, key=lambda d: shares[d])] if shares else [TAXONOMY.dimensions[0].id]
    tags: list[str] = []
    notes: list[str] = []
    regions: list[Region] = []
    boxes: dict[str, list[list[float]]] = dict(record.get("boxes") or {})  # type: ignore[arg-type]
    for dimension_id in dimensions:
        dimension = TAXONOMY.dimension(dimension_id)
        reason = reasons.get(dimension_id) or reasons.get("overall") or ""
        named = [t.id for t in dimension.tags if not t.needs_note and t.label.lower() in reason.lower()]
        if not named:
            named = [t.id for t in dimension.tags if t.needs_note][:1]
            notes.append(reason)
        tags += named
        # The model's boxes for this dimension go with its first tag that is marked with a region of that kind.
        for box in boxes.get(dimension_id, []):
            kind = "point" if box[0] == box[2] and box[1] == box[3] else "box"
            tag = next((t for t in named if region_kinds()[t] == kind), None)
            if tag is not None:
                regions.append(Region(tag=tag, box=tuple(box)))  # type: ignore[arg-type]
    return CandidateLabel(
        defects=tuple(tags),
        acceptable=False,
        rationale=" ".join(n for n in notes if n)[:300],
        regions=tuple(regions),
    )


def screen_prefills(path: Path) -> dict[str, Prefill]:
    """Pre-fills from ``medgen screen`` output: one per source whose four candidates were screened together."""
    if not path.is_file():
        raise MedgenError(f"no screen output at {path}: run `medgen screen -w WS -m MODEL` first")
    config_path = path.parent / "screen_config.json"
    model = (
        json.loads(config_path.read_text()).get("model", "screener") if config_path.is_file() else "screener"
    )
    by_source: dict[str, dict[str, dict[str, object]]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
            by_source.setdefault(record["source"], {})[record["letter"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            raise MedgenError(f"{path} line {number} is not a medgen screen record") from None
    prefills = {}
    for source_id, records in by_source.items():
        if set(records) != set(LETTERS):
            continue  # screened in another grouping (plain files): not one task's four candidates
        if any(records[letter].get("verdict") == "unknown" for letter in LETTERS):
            continue  # no readable answer for a candidate: propose nothing rather than a guess
        labels = tuple(_label_from_screen(records[letter]) for letter in LETTERS)
        scores = [records[letter].get("confidence") for letter in LETTERS]
        score = None if any(s is None for s in scores) else min(float(s) for s in scores)  # type: ignore[arg-type]
        prefills[source_id] = Prefill(labels, score, str(model))
    return prefills


def checks_prefills(workspace: Workspace) -> Callable[[str, list[Candidate]], Prefill | None]:
    """Pre-fills from the automatic checks, measured now where the catalog has none with today's settings."""
    from medgen.checks.check import check_workspace
    from medgen.checks.config import CheckConfig
    from medgen.checks.tables import stored as stored_checks

    config = CheckConfig()
    check_workspace(workspace, config)

    def prefill(source_id: str, candidates: list[Candidate]) -> Prefill | None:
        records = stored_checks(workspace, [c.id for c in candidates], config.digest())
        if len(records) != len(candidates) or any(
            r["located_by"].startswith("error") for r in records.values()
        ):
            return None  # a candidate the checks could not read: propose nothing rather than "No defects"
        labels, confidences = [], []
        for candidate in candidates:
            found = records[candidate.id]["findings"]
            if not found:
                labels.append(CandidateLabel(acceptable=True))
                continue
            note = "; ".join(f"{f['check']} {f['value']:g} (threshold {f['threshold']:g})" for f in found)
            labels.append(
                CandidateLabel(defects=tuple(f["tag"] for f in found), acceptable=False, rationale=note[:300])
            )
            confidences += [float(f["confidence"]) for f in found]
        return Prefill(tuple(labels), min(confidences) if confidences else None, CHECKS_MODEL)

    return prefill


def resolve(
    spec: str, workspace: Workspace, screener: Screener | None = None
) -> Callable[[str, list[Candidate]], Prefill | None]:
    """The pre-fill of a source under ``spec``: ``simulated``, ``screen:PATH``, ``model:CHECKPOINT`` or
    ``endpoint:NAME`` (the last two run ``screener`` on the workspace first)."""
    if spec == SIMULATED:
        return simulated_prefill
    if spec == CHECKS:
        return checks_prefills(workspace)
    kind, sep, argument = spec.partition(":")
    if not sep or not argument:
        raise MedgenError(
            f"--predictions {spec!r}: use simulated, checks, screen:PATH/screen.jsonl, model:CHECKPOINT or "
            "endpoint:NAME"
        )
    if kind not in ("screen", "model", "endpoint"):
        raise MedgenError(
            f"--predictions {spec!r}: unknown kind {kind!r} (known: simulated, checks, screen, model, endpoint)"
        )
    if kind == "screen":
        path = Path(argument)
    elif screener is None:
        raise MedgenError(
            f"--predictions {kind}:... runs the screener, which this caller did not provide: use "
            "`medgen annotate push`, or screen first (`medgen screen -w`) and pass screen:PATH"
        )
    elif kind == "endpoint":
        url = os.environ.get(BASE_URL_ENV)
        if not url:
            raise MedgenError(
                f"--predictions endpoint:NAME reads the API's base URL from ${BASE_URL_ENV} (e.g. http://host:8000/v1)"
            )
        path = screener(workspace, argument, endpoint=url)
    else:
        path = screener(workspace, argument)
    table = screen_prefills(path)
    return lambda source_id, candidates: table.get(source_id)


def store(workspace: Workspace, prefills: dict[str, Prefill]) -> None:
    save_prefills(
        workspace, [(s, p.model_version, p.score, labels_to_json(p.labels)) for s, p in prefills.items()]
    )


def stored(workspace: Workspace, source_ids: list[str] | None = None) -> dict[str, Prefill]:
    """The pre-fills stored when sources were planned: all, or those of ``source_ids``."""
    return {
        r["source_id"]: Prefill(labels_from_json(r["labels"]), r["score"], r["model_version"])
        for r in prefill_rows(workspace, source_ids)
    }


# ---- what annotators did with the pre-fill ------------------------------------------------------


def edits(prefill: CandidateLabel, answer: CandidateLabel, dimension: str) -> str:
    """kept, changed (other tags), added (tags where the pre-fill had none) or removed (cleared)."""
    before, after = set(prefill.defects_in(dimension)), set(answer.defects_in(dimension))
    if before == after:
        return "kept"
    if not after:
        return "removed"
    if not before:
        return "added"
    return "changed"


def edit_rates(
    pairs: list[tuple[tuple[CandidateLabel, ...], tuple[CandidateLabel, ...]]],
) -> dict[str, dict[str, float]]:
    """Per dimension: the share of (candidate) decisions kept, changed, added or removed."""
    counts = {d.id: dict.fromkeys(("kept", "changed", "added", "removed"), 0) for d in TAXONOMY.dimensions}
    for prefill, answer in pairs:
        for before, after in zip(prefill, answer, strict=True):
            for dimension in counts:
                counts[dimension][edits(before, after, dimension)] += 1
    rates = {}
    for dimension, c in counts.items():
        total = sum(c.values())
        rates[dimension] = {k: (v / total if total else 0.0) for k, v in c.items()} | {"n": float(total)}
    return rates
