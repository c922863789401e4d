"""What one `medgen eval` run scores, and how: the model (``InferenceConfig``), the split, the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medgen.inference.config import InferenceConfig

BaselineName = Literal["random", "majority", "human"]
DEFAULT_BASELINES: tuple[BaselineName, ...] = ("random", "majority")


class EvalConfig(InferenceConfig):
    """Everything one `medgen eval` run needs; saved in results.json so the run can be reproduced."""

    dataset: str = Field(description="Exported dataset: a local export folder or a Hub dataset id.")
    split: str = Field(default="test", description="Split to score.")
    revision: str | None = Field(
        default=None, description="Hub revision (tag, e.g. v1.0, or commit) of the dataset."
    )
    name: str | None = Field(
        default=None, description="Row name of the scored model in the report (default: derived)."
    )
    baselines: list[BaselineName] | None = Field(
        default=None,
        description="Baselines scored beside the model: random, majority, human, comma-separated, or none; "
        "unset: random and majority, plus human when the split carries annotator votes.",
    )
    seed: int = Field(default=0, description="Seed of the random baseline and of the bootstrap.")
    bootstrap: int = Field(default=1000, ge=0, description="Bootstrap resamples for the 95% CI (0 = no CI).")
    limit: int | None = Field(
        default=None, gt=0, description="Score only the first N questions of the split."
    )
    output_dir: Path = Field(
        description="Folder for results.json, results.md, results.png, predictions.jsonl."
    )

    @model_validator(mode="after")
    def _something_to_score(self) -> EvalConfig:
        if not self.model and self.baselines == []:
            raise ValueError(
                "nothing to score: give --model, --endpoint with --model, or at least one baseline"
            )
        return self

    def model_name(self) -> str | None:
        """Row name of the scored model."""
        if self.name:
            return self.name
        if self.model and not self.endpoint and Path(self.model).exists():
            return Path(self.model).resolve().name
        return self.model


# The run ------------------------------------------------------------------------------------------
