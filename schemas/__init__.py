"""Taxonomy and data models shared by every medgen stage. Light imports only (pydantic)."""

from schemas.models import (
    Annotation,
    AnnotatorAnswer,
    BenchmarkSample,
    Candidate,
    CandidateLabel,
    GenerationProvenance,
    SourceImage,
    answer_letters,
    format_answer,
    sample_id,
)
from schemas.taxonomy import (
    LETTERS,
    NUM_CANDIDATES,
    OVERALL,
    QUESTION_DIMENSIONS,
    TAXONOMY,
    DefectTag,
    Dimension,
)

__all__ = [
    "LETTERS",
    "NUM_CANDIDATES",
    "OVERALL",
    "QUESTION_DIMENSIONS",
    "TAXONOMY",
    "Annotation",
    "AnnotatorAnswer",
    "BenchmarkSample",
    "Candidate",
    "CandidateLabel",
    "DefectTag",
    "Dimension",
    "GenerationProvenance",
    "SourceImage",
    "answer_letters",
    "format_answer",
    "sample_id",
]
