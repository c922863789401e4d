"""What the ``annotate`` commands and consensus take: their configs and the rules for annotator names.

Light on purpose (pydantic only): the CLI builds its options from these models at start-up, before any
command runs, so ``medgen --help`` must not import the catalog, Label Studio's client or the server here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from medgen.errors import MedgenError

ANNOTATOR = "annotator"
"""The one annotator's name when a push names none."""
ADMIN_NAME = "admin"
DEFAULT_MIN_AGREEMENT = 0.5
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}"
RESERVED = frozenset({ADMIN_NAME, "medgen", "adjudicator", "reviewer"})
"""Names of medgen's own logins and roles: the admin (admin@medgen.local), service logins (medgen+...),
the adjudicator's and the reviewers' queues. No annotator may take one, in any case."""


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise MedgenError(
            f"annotator name {name!r} must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_names(names: Sequence[str], existing: Sequence[str] = ()) -> Sequence[str]:
    """Annotator ``names``, refused in one line when one is malformed, one of medgen's own (``RESERVED``)
    or equal to another, or to a login the workspace has (``existing``), but for case: e-mail
    addresses ignore case, so ``ANN1`` and ``ann1`` would be one person to a reader.
    """
    seen = {name.lower(): name for name in existing}
    for name in names:
        check_name(name)
        if name.lower() in RESERVED:
            raise MedgenError(
                f"annotator name {name!r} is reserved for medgen's own logins ({', '.join(sorted(RESERVED))}): "
                "choose another"
            )
        other = seen.get(name.lower())
        if other is not None and other != name:
            raise MedgenError(f"annotator names {other!r} and {name!r} differ only by case: choose one")
        seen[name.lower()] = name
    return names


class ConsensusConfig(BaseModel):
    """When the annotators' votes on a source make its labels (agreement, export and cot read them alike)."""

    min_agreement: float = Field(
        default=DEFAULT_MIN_AGREEMENT,
        ge=0.0,
        le=1.0,
        description="Consensus needs at least this agreement; below it a source is unresolved (adjudication).",
    )
    min_annotators: int | None = Field(
        default=None, ge=1, description="Valid votes a source needs (unset: the overlap it was pushed with)."
    )


class PushConfig(BaseModel):
    """How tasks are spread over annotators."""

    annotators: list[str] = Field(
        default_factory=lambda: [ANNOTATOR], description="Annotator names, comma-separated: one queue each."
    )
    overlap: int = Field(default=1, ge=1, description="How many annotators see each (non-gold) task.")
    gold_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of new sources with known labels sent to everyone as gold.",
    )
    predictions: str | None = Field(
        default=None,
        description="Pre-fill every task (gold too) with a screener's answers for annotators to verify: "
        "simulated (known labels with errors), checks (`medgen check`'s findings), screen:PATH (a `medgen "
        "screen -w` screen.jsonl) or "
        "model:CHECKPOINT or endpoint:NAME (at $OPENAI_BASE_URL; screens the new sources first).",
    )
    order: Literal["random", "uncertainty"] = Field(
        default="random",
        description="Queue order: random, or the screener's least confident tasks first (needs predictions "
        "with scores).",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Tasks per import request.")
    seed: int = Field(default=0, description="Seed of the gold draw and the queue order.")
    regions: bool = Field(
        default=False,
        description="Annotators also mark where each defect is (a box dragged on the candidate, a point for a "
        "missing shadow), tied to its tag; optional per tag. Queues pushed before get the controls added.",
    )
    require_regions: bool = Field(
        default=False,
        description="With --regions: every tag that can be marked needs its region; an answer without one is "
        "incomplete (pull says which). Implies --regions.",
    )

    @model_validator(mode="after")
    def _required_regions_are_regions(self) -> PushConfig:
        if self.require_regions:
            self.regions = True
        return self

    def regions_level(self) -> int:
        """``ls_projects.regions`` of the queues this push makes or updates: 0, 1 (optional) or 2 (required)."""
        return 2 if self.require_regions else int(self.regions)

    @field_validator("annotators")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        names = [name.strip() for name in names]
        if not names or any(not name or "," in name or len(name) > 40 for name in names):
            raise ValueError("annotator names must be non-empty, at most 40 characters, without commas")
        if len(set(names)) != len(names):
            raise ValueError(f"annotator names repeat: {', '.join(names)}")
        check_names(names)  # medgen's own names (admin, adjudicator...) and names equal but for case
        return names

    @field_validator("predictions", mode="before")
    @classmethod
    def _spec(cls, value: object) -> object:
        if value is True:
            return "simulated"
        return None if value is False or value == "" else value

    @model_validator(mode="after")
    def _overlap_fits(self) -> PushConfig:
        if self.order == "uncertainty" and not self.predictions:
            raise ValueError(
                "--order uncertainty needs --predictions (the screener's confidence orders the queue)"
            )
        if self.overlap > len(self.annotators):
            raise ValueError(
                f"--overlap {self.overlap} needs at least {self.overlap} annotators, got {len(self.annotators)}"
            )
        return self


REVIEWER = "reviewer"
"""The reviewer's name when a review names none (reserved: no annotator takes it)."""
GOLD_CHECK = "gold check"
"""The reviewer named on decisions the gold check makes on its own (review, report)."""


class ReviewConfig(BaseModel):
    """Which answers a reviewer sees, and what the gold check does on its own (`medgen annotate review`)."""

    reviewer: str = Field(
        default=REVIEWER, description="The reviewer's login: their own queue holds the answers to review."
    )
    first: int = Field(
        default=10, ge=0, description="Every answer of each annotator's first N tasks is reviewed."
    )
    share: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Share of the other answers reviewed (a seeded draw per answer).",
    )
    min_agreement: float = Field(
        default=DEFAULT_MIN_AGREEMENT,
        ge=0.0,
        le=1.0,
        description="Answers on a source whose annotators agree less than this (or tie) are reviewed.",
    )
    gold_feedback: bool = Field(
        default=True,
        description="A gold miss goes back to its author at once with the expected answer (a second miss goes "
        "to the reviewer); a gold hit is accepted.",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Review tasks per import request.")
    seed: int = Field(default=0, description="Seed of the share's draw.")

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, name: str) -> str:
        name = name.strip()
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(f"reviewer name {name!r} must be 1-40 letters, digits, '.', '_' or '-'")
        return name
