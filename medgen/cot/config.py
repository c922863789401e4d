"""What `medgen cot` asks a teacher, and what a rationale must satisfy to be kept."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from annotation.options import ConsensusConfig
from medgen.inference.config import InferenceConfig


class CotConfig(InferenceConfig, ConsensusConfig):
    """Which teacher (``InferenceConfig``), which questions, and what a rationale must satisfy."""

    DEFAULTS = {"max_new_tokens": 768}  # a rationale for four images is longer than an answer

    labels: Literal["consensus", "injected"] = Field(
        default="consensus", description="Gold answers from the annotators' consensus or injected defects."
    )
    min_words: int = Field(default=20, ge=1, description="Shortest rationale kept, in words.")
    max_words: int = Field(default=250, ge=1, description="Longest rationale kept, in words.")
    limit: int | None = Field(default=None, ge=1, description="Ask about at most this many questions now.")
    retry_rejected: bool = Field(default=False, description="Ask again about questions rejected before.")

    @model_validator(mode="after")
    def _budget(self) -> CotConfig:
        if not self.model:
            raise ValueError("give the teacher: --model CHECKPOINT, or --endpoint URL --model NAME")
        if self.min_words > self.max_words:
            raise ValueError(f"--min-words {self.min_words} exceeds --max-words {self.max_words}")
        return self
