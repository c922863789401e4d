"""What `medgen demo` builds: how many products, annotators and training steps, which backend."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class DemoConfig(BaseModel):
    """What the demo builds; defaults finish in a few minutes on 2 CPU cores."""

    directory: Path = Field(description="Workspace folder (created, or resumed if it is a workspace).")
    sources: int = Field(
        default=24,
        ge=4,
        le=500,
        description="Sample product photos to draw.",
        json_schema_extra={"flags": ["--sources", "-n"]},
    )
    annotators: list[str] = Field(
        default_factory=lambda: ["ann1", "ann2", "ann3"],
        description="Simulated annotators, one project each.",
    )
    overlap: int = Field(default=3, ge=1, description="Annotators per task.")
    gold_rate: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of sources sent to everyone as gold."
    )
    noise: float = Field(default=0.1, ge=0.0, le=0.5, description="Error rate of the simulated annotators.")
    backend: Literal["synthetic", "diffusers"] = Field(default="synthetic", description="Generation backend.")
    model: str | None = Field(default=None, description="Diffusers checkpoint (with --backend diffusers).")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(default="auto", description="Diffusers device.")
    sft_steps: int = Field(
        default=500,
        ge=1,
        description="SFT optimizer steps on the tiny VLM (enough to learn the answer format).",
    )
    grpo_steps: int = Field(default=10, ge=1, description="DPA-GRPO optimizer steps after SFT.")
    keep_server: bool = Field(default=False, description="Leave Label Studio running at the end.")
    seed: int = Field(default=0, description="Seed of samples, generation, annotators and training.")

    @field_validator("annotators")
    @classmethod
    def _annotators(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError("the demo needs at least one simulated annotator")
        return names
