"""Pydantic models shared by every stage: sources, candidates, annotations, benchmark samples."""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.regions import Region
from schemas.taxonomy import LETTERS, NUM_CANDIDATES, OVERALL, QUESTION_DIMENSIONS, TAXONOMY

SIMULATED_MARK = "[simulated]"
"""Prefix of every note written by a simulated annotator: such labels never pass for human work."""


def format_answer(letters: list[str] | set[str] | tuple[str, ...]) -> str:
    """Write a set of candidate letters the one canonical way: sorted, unique, comma-joined."""
    unknown = sorted(set(letters) - set(LETTERS))
    if unknown:
        raise ValueError(f"answer letters must be among {', '.join(LETTERS)}; got {', '.join(unknown)}")
    return ",".join(sorted(set(letters)))


def _sorted_letters() -> str:
    """Regex of a canonical answer: letters in order, each at most once, comma-separated ('A,C')."""
    options = [
        letter + "".join(rf"(?:\s*,\s*{later})?" for later in LETTERS[i + 1 :])
        for i, letter in enumerate(LETTERS)
    ]
    return "(?:" + "|".join(options) + ")"


COMPLETION_RE = re.compile(
    r"^\s*<think>(?:(?!</?think>|</?answer>).)+</think>\s*<answer>\s*(?P<answer>"
    + _sorted_letters()
    + r")\s*</answer>\s*(?:<boxes>[^<]*</boxes>\s*)?$",
    re.DOTALL | re.IGNORECASE,
)
"""A well-formed completion: reasoning in one <think>, then sorted, unique letters in one <answer>, and (the
answer variant with boxes, ``schemas.regions``) where the answered images' defects are in one <boxes>."""


def completion_answer(text: str) -> str | None:
    """The canonical answer of a well-formed completion ('A,C'), or None when it is not well formed."""
    match = COMPLETION_RE.match(text)
    if match is None:
        return None
    return format_answer([letter.upper() for letter in re.split(r"\s*,\s*", match["answer"].strip())])


def sample_id(source_id: str, dimension: str) -> str:
    """Stable id of the question about ``dimension`` for ``source_id``."""
    return hashlib.sha256(f"{source_id}/{dimension}".encode()).hexdigest()[:16]


class SourceImage(BaseModel):
    """An ingested source photo of a medicine product."""

    id: str = Field(description="sha256 of the normalised RGB pixels (content hash).")
    original_name: str = Field(description="File name the source was added from.")
    image_key: str = Field(description="Store key of the normalised RGB PNG.")
    mask_key: str = Field(description="Store key of the product mask (L-mode PNG, 255 = product).")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    phash: str = Field(description="Perceptual hash (hex) used to find near-duplicates.")
    mask_from_alpha: bool = Field(description="True when the mask came from the file's alpha channel.")
    added_at: datetime


class GenerationProvenance(BaseModel):
    """How one candidate was made: enough to reproduce it."""

    backend: str = Field(description="'diffusers' or 'synthetic'.")
    model_id: str = Field(
        description="Hub id or local path of the checkpoint ('synthetic' for that backend)."
    )
    model_revision: str = Field(default="", description="Hub commit hash or content hash of local weights.")
    recipe: str = Field(description="'background', 'outpaint', 'img2img' or the synthetic recipe.")
    prompt: str = Field(default="", description="Scene prompt sent to the model.")
    negative_prompt: str = Field(default="")
    seed: int
    steps: int = Field(default=0, ge=0)
    guidance: float = Field(default=0.0, ge=0.0)
    strength: float = Field(default=1.0, ge=0.0, le=1.0)
    width: int = Field(default=0, ge=0)
    height: int = Field(default=0, ge=0)
    extra: str = Field(default="{}", description="JSON: library versions and backend-specific parameters.")


class Candidate(BaseModel):
    """One generated image for a source, in slot 0..3 (letters A..D)."""

    id: str
    source_id: str
    slot: int = Field(ge=0, lt=NUM_CANDIDATES)
    image_key: str
    provenance: GenerationProvenance
    injected_defects: list[str] | None = Field(
        default=None, description="Ground-truth defect tags for synthetic candidates; None when unknown."
    )
    injected_regions: list[Region] | None = Field(
        default=None,
        description="Where each injected defect shows (synthetic candidates); None when unknown.",
    )

    @property
    def letter(self) -> str:
        return LETTERS[self.slot]

    def injected_label(self) -> CandidateLabel:
        """The ground truth the synthetic backend recorded: its tags and where they show (``[]`` = acceptable)."""
        defects = tuple(self.injected_defects or ())
        regions = tuple(r for r in self.injected_regions or () if r.tag in defects)
        return CandidateLabel(defects=defects, acceptable=not defects, regions=regions)

    @field_validator("injected_defects")
    @classmethod
    def _known_tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is not None:
            _check_tags(tags)
        return tags


@functools.cache
def _known_tags() -> frozenset[str]:
    """The taxonomy's tag ids, built once (every label validated checks its tags against them)."""
    return frozenset(TAXONOMY.all_tags())


def _check_tags(tags: list[str]) -> None:
    known = _known_tags()
    unknown = [tag for tag in tags if tag not in known]
    if unknown:
        raise ValueError(f"defect tag(s) not in the taxonomy: {', '.join(unknown)}")
    if len(set(tags)) != len(tags):
        raise ValueError(f"defect tags repeated: {', '.join(tags)}")


class CandidateLabel(BaseModel):
    """One annotator's judgement of one candidate."""

    model_config = ConfigDict(frozen=True)

    defects: tuple[str, ...] = Field(default=(), description="Defect tag ids, any dimension.")
    acceptable: bool = Field(description="Fit to publish as is.")
    rationale: str = Field(default="", description="Optional free-text reason.")
    regions: tuple[Region, ...] = Field(
        default=(), description="Where its defects are (optional, each tied to one of its tags)."
    )

    @field_validator("defects")
    @classmethod
    def _known(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        _check_tags(list(tags))
        return tuple(sorted(tags))

    @model_validator(mode="after")
    def _consistent(self) -> CandidateLabel:
        if self.acceptable and self.defects:
            raise ValueError(
                f"a candidate marked acceptable cannot carry defect tags ({', '.join(self.defects)}): "
                "remove the tags or mark it not acceptable"
            )
        if not self.acceptable and not self.defects:
            raise ValueError("a candidate marked not acceptable needs at least one defect tag saying why")
        stray = sorted({region.tag for region in self.regions} - set(self.defects))
        if stray:
            raise ValueError(
                f"a region must belong to one of the candidate's tags; {', '.join(stray)} is not one"
            )
        return self

    def defects_in(self, dimension_id: str) -> list[str]:
        return [tag for tag in self.defects if TAXONOMY.dimension_of(tag) == dimension_id]


class Annotation(BaseModel):
    """One annotator's labels for the four candidates of one source."""

    annotator: str
    source_id: str
    labels: tuple[CandidateLabel, ...] = Field(description="One label per candidate, in letter order.")
    lead_time_s: float | None = Field(default=None, ge=0, description="Seconds the annotator spent.")
    created_at: datetime | None = None

    @field_validator("labels")
    @classmethod
    def _four(cls, labels: tuple[CandidateLabel, ...]) -> tuple[CandidateLabel, ...]:
        if len(labels) != NUM_CANDIDATES:
            raise ValueError(f"expected {NUM_CANDIDATES} candidate labels (A-D), got {len(labels)}")
        return labels


def answer_letters(labels: tuple[CandidateLabel, ...] | list[CandidateLabel], dimension: str) -> list[str]:
    """Letters that answer the question about ``dimension`` for these four labels."""
    if dimension == OVERALL:
        return [LETTERS[i] for i, label in enumerate(labels) if label.acceptable]
    return [LETTERS[i] for i, label in enumerate(labels) if label.defects_in(dimension)]


class AnnotatorAnswer(BaseModel):
    """One annotator's own answer to one question, as exported (the human baseline's input)."""

    annotator: str = Field(description="The annotator's medgen name.")
    answer: str = Field(description="Their letters for this question, sorted and comma-joined; '' for none.")

    @field_validator("answer")
    @classmethod
    def _canonical(cls, answer: str) -> str:
        letters = [letter for letter in answer.split(",") if letter]
        if format_answer(letters) != answer:
            raise ValueError(f"answer {answer!r} must be sorted, unique letters joined by commas, e.g. 'A,C'")
        return answer


class BenchmarkSample(BaseModel):
    """One row of the exported dataset (``images`` holds file paths until the writer embeds them)."""

    id: str
    source_id: str
    dimension: str
    images: list[str] = Field(description="Paths of [source, A, B, C, D].")
    question: str
    options: list[str] = Field(default_factory=lambda: list(LETTERS))
    answer: str = Field(description="Letters of the answer, sorted and comma-joined, e.g. 'A,C'.")
    defects: list[list[str]] = Field(description="Consensus defect tags per candidate.")
    acceptable: list[bool] = Field(description="Consensus acceptability per candidate.")
    rationale: str = Field(description="Reference chain of thought.")
    num_annotators: int = Field(ge=0)
    agreement: float = Field(ge=0.0, le=1.0, description="Mean share of annotators agreeing with consensus.")
    votes: list[AnnotatorAnswer] = Field(
        default_factory=list,
        description="Each annotator's own answer to this question (adjudications left out), sorted by name.",
    )
    generation: list[GenerationProvenance]
    regions: list[list[Region]] = Field(
        default_factory=lambda: [[] for _ in LETTERS],
        description="Where each candidate's defects of this question's dimension are (all of them for overall): "
        "consensus regions, each with its tag, box (a point when x0 == x1 and y0 == y1) and who agreed.",
    )
    dataset_version: str
    prompt: list[dict[str, Any]] = Field(description="Conversational user turn (TRL prompt).")
    completion: list[dict[str, Any]] = Field(description="Reference assistant turn (TRL completion).")

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkSample:
        if self.dimension not in QUESTION_DIMENSIONS:
            raise ValueError(f"dimension {self.dimension!r} is not one of {', '.join(QUESTION_DIMENSIONS)}")
        if self.id != sample_id(self.source_id, self.dimension):
            raise ValueError("id is not the stable hash of source_id and dimension")
        n = NUM_CANDIDATES
        if len(self.images) != n + 1:
            raise ValueError(
                f"images must hold the source and {n} candidates ({n + 1}), got {len(self.images)}"
            )
        for name, column in (
            ("defects", self.defects),
            ("acceptable", self.acceptable),
            ("generation", self.generation),
            ("regions", self.regions),
        ):
            if len(column) != n:
                raise ValueError(f"{name} must have one entry per candidate ({n}), got {len(column)}")
        if self.options != list(LETTERS):
            raise ValueError(f"options must be {list(LETTERS)}")
        labels = tuple(  # a region of a tag the candidate lacks is refused here, by CandidateLabel
            CandidateLabel(defects=tuple(tags), acceptable=ok, regions=tuple(regions))
            for tags, ok, regions in zip(self.defects, self.acceptable, self.regions, strict=True)
        )
        expected = format_answer(answer_letters(labels, self.dimension))
        if not expected:
            raise ValueError(
                f"no candidate answers the {self.dimension} question: such a question is not emitted"
            )
        if self.answer != expected:
            raise ValueError(f"answer {self.answer!r} disagrees with the labels, which give {expected!r}")
        image_slots = (
            sum(1 for part in self.prompt[0]["content"] if part.get("type") == "image") if self.prompt else 0
        )
        if image_slots != n + 1:
            raise ValueError(f"prompt must hold one image placeholder per image ({n + 1}), got {image_slots}")
        said = completion_answer(self.completion[0]["content"][0]["text"])
        if said is None:
            raise ValueError(
                "completion is not <think>reasoning</think><answer>letters</answer> (a note may hold a tag)"
            )
        if said != self.answer:
            raise ValueError(f"completion answers {said!r}, the sample's answer is {self.answer!r}")
        return self
