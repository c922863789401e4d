"""What decides one export version: its name, label origin, split ratios and Parquet sizes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from annotation.options import ConsensusConfig
from medgen.export.layout import VERSION_PATTERN


class ExportConfig(ConsensusConfig):
    """Everything that decides the content of one export version (with when votes make labels)."""

    version: str = Field(
        description="Version name, e.g. 'v1.1'; also the Hub tag. Letters, digits, '.', '_', '-'.",
        json_schema_extra={"flags": ["--version", "-v"]},
    )
    labels: Literal["consensus", "injected"] = Field(
        default="consensus",
        description="'consensus': annotators' majority labels; 'injected': the synthetic backend's ground truth.",
    )
    require_review: bool = Field(
        default=False,
        description="Count only answers a reviewer (or the gold check) accepted (`medgen annotate review`); a "
        "source none of whose answers was accepted yet is left out, with the reason.",
    )
    rationale: Literal["template", "annotator", "teacher"] = Field(
        default="annotator",
        description="Reference reasoning: 'template' (from the tags), 'annotator' (the template with the "
        "annotators' notes), 'teacher' (a teacher model's answer-driven rationale from `medgen cot`, where "
        "there is one for the current answer; else 'annotator').",
    )
    train: float = Field(default=0.8, ge=0.0, le=1.0, description="Share of sources in the train split.")
    validation: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of sources in the validation split."
    )
    test: float = Field(default=0.1, ge=0.0, le=1.0, description="Share of sources in the test split.")
    license: str = Field(default="other", description="License id written into the card (e.g. 'cc-by-4.0').")
    pretty_name: str = Field(default="medgen medicine-product image screening", description="Dataset title.")
    simulated_annotators: bool = Field(
        default=False,
        description="Say in the card, prominently, that the labels come from simulated annotators.",
    )
    row_group_rows: int = Field(default=100, ge=1, le=10_000, description="Max rows per Parquet row group.")
    row_group_mb: float = Field(
        default=32.0,
        gt=0,
        le=250,
        description="Max MB per row group (the Hub viewer reads row groups <= 286 MiB; small ones also write faster).",
    )
    shard_mb: float = Field(
        default=500.0, gt=0, description="Max MB per Parquet file before a new shard starts."
    )

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        if not re.fullmatch(VERSION_PATTERN, version):
            raise ValueError(
                f"version {version!r} must start with a letter or digit and hold only letters, digits, '.', '_', '-' "
                "(it becomes a folder name and a git tag), e.g. v1.1"
            )
        return version

    @model_validator(mode="after")
    def _ratios(self) -> ExportConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios train={self.train}, validation={self.validation}, test={self.test} sum to {total:g}; "
                "they must sum to 1"
            )
        return self

    @property
    def ratios(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}
