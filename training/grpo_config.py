"""Config of the DPA-GRPO stage: TRL's ``GRPOConfig`` plus medgen's dataset/model/LoRA and reward fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import trl

from medgen.errors import MedgenError
from training.config import MedgenArguments
from training.rewards import DEFAULT_LAMBDA0, lambda_schedule


@dataclass
class GRPOConfig(MedgenArguments, trl.GRPOConfig):
    """Every ``trl.GRPOConfig`` field (num_generations, use_vllm, beta, ...) plus medgen's fields.

    ``model_name_or_path`` defaults to the SFT output beside this run: ``<output_dir>/../sft``.
    """

    # Computed from other fields in __post_init__ (medgen's or TRL's); a saved config leaves them out,
    # since TRL refuses generation_batch_size together with steps_per_generation.
    DERIVED_FIELDS: ClassVar[tuple[str, ...]] = ("reward_weights", "generation_batch_size")

    dpa_lambda0: float = field(
        default=DEFAULT_LAMBDA0,
        metadata={"help": "Weight of DPA partial credit at the start of training (0 to 1); it decays to 0."},
    )
    dpa_schedule: str = field(
        default="cosine",
        metadata={"help": "How partial credit decays with progress: cosine, linear or constant."},
    )
    dpa_reward_weight: float = field(default=1.0, metadata={"help": "Weight of the DPA accuracy reward."})
    format_reward_weight: float = field(
        default=0.5, metadata={"help": "Weight of the <think>...</think><answer>...</answer> format reward."}
    )
    localisation_reward_weight: float = field(
        default=0.5,
        metadata={
            "help": "Weight of the localisation reward (IoU of the named boxes with the export's regions); used "
            "only with answer_boxes."
        },
    )

    hard_cases: bool = field(
        default=False,
        metadata={
            "help": "Hard-case mining (HCM-GRPO): drop groups whose rewards do not vary and refill the batch, "
            "keep each prompt's difficulty (training/hard_cases.py)."
        },
    )
    hard_cases_max_refills: int = field(
        default=2, metadata={"help": "Refill rounds per generation batch before a flat group is masked out."}
    )
    hard_cases_oversample: float = field(
        default=0.0,
        metadata={"help": "Draw prompts with weight 1 + this x difficulty (0: uniform, as GRPO does)."},
    )
    hard_cases_decay: float = field(
        default=0.5, metadata={"help": "Weight of a prompt's earlier difficulty when a new one is measured."}
    )

    def __post_init__(self) -> None:
        self.check_medgen_fields()
        if self.hard_cases_max_refills < 0 or self.hard_cases_oversample < 0:
            raise MedgenError("hard_cases_max_refills and hard_cases_oversample must not be negative")
        if not 0 <= self.hard_cases_decay < 1:
            raise MedgenError(f"hard_cases_decay must be in [0, 1), got {self.hard_cases_decay}")
        try:
            lambda_schedule(0.0, self.dpa_lambda0, self.dpa_schedule)
        except ValueError as error:
            raise MedgenError(f"DPA reward: {error}") from None
        weights = [self.dpa_reward_weight, self.format_reward_weight]
        if self.answer_boxes:
            weights.append(self.localisation_reward_weight)
        # A run's saved train_config.yaml holds the derived reward_weights: accept them when they agree.
        if self.reward_weights is not None and [float(w) for w in self.reward_weights] != weights:
            raise MedgenError(
                "set dpa_reward_weight, format_reward_weight and localisation_reward_weight instead of reward_weights"
            )
        self.reward_weights = weights
        if not self.model_name_or_path:
            self.model_name_or_path = str(Path(self.output_dir or ".").parent / "sft")
        super().__post_init__()
