"""Config of the chain-of-thought SFT stage: TRL's ``SFTConfig`` plus medgen's dataset/model/LoRA fields."""

from __future__ import annotations

from dataclasses import dataclass, field

import trl

from medgen.errors import MedgenError
from training.config import MedgenArguments


@dataclass
class SFTConfig(MedgenArguments, trl.SFTConfig):
    """Every ``trl.SFTConfig`` field (output_dir, learning_rate, max_steps, ...) plus ``MedgenArguments``."""

    candidate_orders: int = field(
        default=1,
        metadata={
            "help": "Show each training question in this many orders of its candidates A-D: as exported, then "
            "in seeded random others, the images, answer and template reasoning following (1: as exported)."
        },
    )

    def __post_init__(self) -> None:
        self.check_medgen_fields()
        if not self.model_name_or_path:
            raise MedgenError("model_name_or_path is required: set it in the recipe or pass --model")
        if self.candidate_orders < 1:
            raise MedgenError(f"candidate_orders must be at least 1, got {self.candidate_orders}")
        if self.packing or self.padding_free:
            raise MedgenError("packing and padding_free do not apply to image data: set them to false")
        super().__post_init__()
