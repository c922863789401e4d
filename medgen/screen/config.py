"""How `medgen screen` screens: the model (``InferenceConfig``), samples per question, the threshold, outputs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from medgen.inference.config import InferenceConfig


class ScreenConfig(InferenceConfig):
    """How to screen: which model (``InferenceConfig``), how many samples, the decision threshold, where outputs go."""

    samples: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Completions per question; a candidate's confidence is their agreement (self-consistency).",
        json_schema_extra={"flags": ["--samples", "-k"]},
    )
    threshold: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Share of samples that makes a candidate publishable or a dimension defective.",
    )
    checks: bool = Field(True, description="Run `medgen check` beside the model and show its findings.")
    output_dir: Path = Field(description="Folder for screen.jsonl, screen.csv and contact_sheet.html.")

    @model_validator(mode="after")
    def _sampling(self) -> ScreenConfig:
        if not self.model:
            raise ValueError("give the screener: --model CHECKPOINT, or --endpoint URL --model NAME")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("--samples above 1 needs --temperature above 0 (greedy samples are identical)")
        return self

    def default_temperature(self) -> float:
        """Greedy for one sample; 0.7 for several (self-consistency needs samples that differ)."""
        return 0.0 if self.samples == 1 else 0.7
