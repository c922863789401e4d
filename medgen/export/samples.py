"""Samples from labels: one multiple-choice question per defective dimension, plus ``overall``; splits.

``build_source_samples`` is a pure function of one source's candidates and labels; the labels come
from the annotators' consensus or from the synthetic backend's injected defects (``load_labels``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from medgen.errors import MedgenError
from medgen.export.layout import SPLITS
from medgen.export.rationales import RationaleSource, TeacherRationale, origin_of
from schemas import AnnotatorAnswer, BenchmarkSample, Candidate, CandidateLabel
from schemas.models import answer_letters, format_answer, sample_id
from schemas.prompts import completion_messages, prompt_messages, question_text, rationale_text
from schemas.regions import Region
from schemas.taxonomy import LETTERS, NUM_CANDIDATES, OVERALL, QUESTION_DIMENSIONS, tag_dimensions

if TYPE_CHECKING:
    from medgen.workspace import Workspace


@dataclass(frozen=True)
class SourceLabels:
    """The four candidates' labels for one source, with how they were obtained."""

    labels: tuple[CandidateLabel, ...]
    num_annotators: int = 0
    agreement: float = 1.0
    votes: dict[str, tuple[CandidateLabel, ...]] = field(default_factory=dict)  # annotator -> their labels


class InjectedLabels(Mapping[str, SourceLabels]):
    """Injected ground truth, computed from a source's candidates when asked (not held for every source).

    An export streams sources one by one; holding 4 labels of every source of a 100k-source workspace
    at once would make its memory grow with the workspace. A source that cannot have labels is left out
    (``get`` gives None) and its reason is kept in ``missing``.
    """

    def __init__(self, workspace: Workspace, missing: dict[str, str]):
        self.workspace = workspace
        self.missing = missing

    def __getitem__(self, source_id: str) -> SourceLabels:
        candidates = self.workspace.catalog.candidates(source_id)
        if not candidates:
            raise KeyError(source_id)
        try:
            return injected_labels(candidates)
        except (SampleError, ValidationError) as error:
            self.missing[source_id] = _reason(error)
            raise KeyError(source_id) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.workspace.catalog.candidate_sources())

    def __len__(self) -> int:
        return len(self.workspace.catalog.candidate_sources())


@dataclass
class LabelSet:
    """Labels per source, sources that have none (with the reason), and where the labels came from."""

    items: Mapping[str, SourceLabels]
    missing: dict[str, str] = field(default_factory=dict)
    simulated: bool = False
    origin: str = "consensus"
    alpha: dict[str, float | None] = field(
        default_factory=dict
    )  # Krippendorff's alpha, consensus labels only


def injected_labels(candidates: Sequence[Candidate]) -> SourceLabels:
    """Ground-truth labels from the synthetic backend's injected defects (``[]`` = acceptable)."""
    unknown = [c.letter for c in candidates if c.injected_defects is None]
    if unknown:
        raise SampleError(f"candidate(s) {','.join(unknown)} have no injected ground truth (not synthetic)")
    labels = tuple(c.injected_label() for c in sorted(candidates, key=lambda c: c.slot))
    return SourceLabels(labels=labels, num_annotators=0, agreement=1.0)


def load_labels(
    workspace: Workspace,
    origin: str,
    min_agreement: float = 0.5,
    min_annotators: int | None = None,
    require_review: bool = False,
) -> LabelSet:
    """Labels for every labelled source of the workspace, from consensus annotations or injected defects
    (``require_review``: only answers a review accepted count)."""
    if origin == "injected":
        missing: dict[str, str] = {}
        return LabelSet(items=InjectedLabels(workspace, missing), missing=missing, origin="injected")
    try:
        from annotation.agreement import krippendorff_alpha
        from annotation.consensus import ConsensusLabels
    except ImportError as error:
        raise MedgenError(
            f"--labels consensus needs the annotation stage (annotation.consensus: {error}); "
            "for synthetic candidates use --labels injected"
        ) from None
    consensus = ConsensusLabels(
        workspace, min_agreement=min_agreement, min_annotators=min_annotators, require_review=require_review
    )
    return LabelSet(
        items=_AsSourceLabels(consensus),
        missing=_Unresolved(consensus.unresolved),
        simulated=consensus.simulated(),
        alpha=krippendorff_alpha(workspace),
    )


class _AsSourceLabels(Mapping[str, SourceLabels]):
    """Each source's consensus, computed when the export reaches it, as ``SourceLabels``."""

    def __init__(self, consensus: Mapping[str, Any]):
        self.consensus = consensus

    def __getitem__(self, source_id: str) -> SourceLabels:
        c = self.consensus[source_id]
        return SourceLabels(
            labels=tuple(c.labels),
            num_annotators=int(c.num_annotators),
            agreement=float(c.agreement),
            votes=dict(c.votes),
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.consensus)

    def __len__(self) -> int:
        return len(self.consensus)


class _Unresolved(dict[str, str]):
    """Reasons of the sources without consensus, as an export asks for them (filled when a lookup fails)."""

    def __init__(self, unresolved: dict[str, str]):
        super().__init__()
        self.unresolved = unresolved

    def get(self, source_id: str, default: Any = None) -> Any:  # type: ignore[override]
        reason = self.unresolved.get(source_id)
        return f"unresolved annotations: {reason}" if reason is not None else default


class SampleError(ValueError):
    """A source cannot make a valid sample; the message says why."""


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"invalid sample: {first['msg']}"
    return str(error)


def build_source_samples(
    source_id: str,
    images: Sequence[str],
    candidates: Sequence[Candidate],
    labels: SourceLabels,
    dataset_version: str,
    rationale: RationaleSource = "annotator",
    teacher: dict[str, TeacherRationale] | None = None,
) -> list[BenchmarkSample]:
    """Every question one source makes, validated: one per defective dimension, plus ``overall``.

    Args:
        source_id: The source's id.
        images: Paths of [source, A, B, C, D].
        candidates: The source's four candidates (any order; slots 0-3).
        labels: One label per candidate, in letter order.
        dataset_version: Written into every sample.
        rationale: Where the reference reasoning comes from (``medgen.export.rationales``).
        teacher: Accepted teacher rationales by sample id (``rationale="teacher"``).

    Raises:
        SampleError: the source cannot make a valid sample (the message says why).
    """
    slots = sorted(c.slot for c in candidates)
    if slots != list(range(NUM_CANDIDATES)):
        have = ",".join(LETTERS[s] for s in slots) or "none"
        raise SampleError(f"needs {NUM_CANDIDATES} candidates A-D, has {have}")
    if len(labels.labels) != NUM_CANDIDATES:
        raise SampleError(f"needs {NUM_CANDIDATES} candidate labels, has {len(labels.labels)}")
    if len(images) != NUM_CANDIDATES + 1:
        raise SampleError(f"needs {NUM_CANDIDATES + 1} images (source, A-D), has {len(images)}")
    ordered = sorted(candidates, key=lambda c: c.slot)
    generation = [c.provenance for c in ordered]
    samples = []
    for dimension in QUESTION_DIMENSIONS:
        letters = answer_letters(labels.labels, dimension)
        if not letters:
            continue
        answer = format_answer(letters)
        origin = origin_of(sample_id(source_id, dimension), answer, rationale, teacher or {})
        reasoning = (
            (teacher or {})[sample_id(source_id, dimension)].text
            if origin == "teacher"
            else rationale_text(labels.labels, dimension, notes=origin == "annotator")
        )
        question = question_text(dimension)
        try:
            samples.append(
                BenchmarkSample(
                    id=sample_id(source_id, dimension),
                    source_id=source_id,
                    dimension=dimension,
                    images=list(images),
                    question=question,
                    answer=answer,
                    defects=[list(label.defects) for label in labels.labels],
                    acceptable=[label.acceptable for label in labels.labels],
                    rationale=reasoning,
                    num_annotators=labels.num_annotators,
                    agreement=labels.agreement,
                    votes=[
                        AnnotatorAnswer(annotator=name, answer=format_answer(answer_letters(vote, dimension)))
                        for name, vote in sorted(labels.votes.items())
                    ],
                    generation=generation,
                    regions=question_regions(labels.labels, dimension),
                    dataset_version=dataset_version,
                    prompt=prompt_messages(question),
                    completion=completion_messages(reasoning, answer),
                )
            )
        except ValidationError as error:
            raise SampleError(f"{dimension}: {_reason(error)}") from None
    if not samples:
        raise SampleError("no question: no candidate is defective or acceptable")
    return samples


def question_regions(labels: Sequence[CandidateLabel], dimension: str) -> list[list[Region]]:
    """Each candidate's regions that the question about ``dimension`` is about (every one for overall)."""
    if dimension == OVERALL:
        return [list(label.regions) for label in labels]
    return [[r for r in label.regions if tag_dimensions()[r.tag] == dimension] for label in labels]


def assign_split(source_id: str, ratios: dict[str, float]) -> str:
    """The split of a source: a fixed point in [0, 1) from a hash of its id, cut by the ratios.

    A source's split depends only on its id and the ratios, so adding sources never moves one.
    """
    point = int.from_bytes(hashlib.sha256(f"medgen-split/{source_id}".encode()).digest()[:8], "big") / 2**64
    cumulative = 0.0
    chosen = None
    for split in SPLITS:
        if ratios[split] <= 0:
            continue
        chosen = split
        cumulative += ratios[split]
        if point < cumulative:
            return split
    assert chosen is not None, "ratios must not all be zero"
    return chosen
