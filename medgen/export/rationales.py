"""Where a sample's reference reasoning comes from: ``medgen export --rationale template|annotator|teacher``.

- ``template``: a finding per candidate derived from its defect tags, then the conclusion.
- ``annotator`` (default): the same, with each annotator's own note on a candidate where one was written.
- ``teacher``: the accepted answer-driven rationale of a teacher model (``medgen cot``, stored in the
  catalog's ``rationales`` table) where it explains the current gold answer; other samples fall back to
  ``annotator`` and the card counts both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from medgen.export.tables import rationales

if TYPE_CHECKING:
    from medgen.workspace import Workspace

RationaleSource = Literal["template", "annotator", "teacher"]
TEACHER = "teacher"  # rationales.origin of a teacher model's rationale
ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass(frozen=True)
class TeacherRationale:
    answer: str  # the gold answer it explains
    text: str
    model: str


def teacher_rationales(workspace: Workspace) -> dict[str, TeacherRationale]:
    """Accepted teacher rationales by sample id."""
    rows = rationales(workspace, TEACHER, ACCEPTED)
    return {r["sample_id"]: TeacherRationale(r["answer"], r["text"], r["model"]) for r in rows}


def origin_of(
    sample_id: str, answer: str, source: RationaleSource, teacher: dict[str, TeacherRationale]
) -> RationaleSource:
    """Which rationale a sample gets: the teacher's only when it explains this very answer."""
    if source != TEACHER:
        return source
    found = teacher.get(sample_id)
    return TEACHER if found is not None and found.answer == answer else "annotator"
