"""Hard-case mining for GRPO (the follow-up's HCM-GRPO, arXiv 2511.10055).

GRPO learns from differences within a group of completions of one prompt. A group whose rewards are
all equal (every completion right, or every one wrong) has zero advantage and teaches nothing, yet it
takes a slot of the batch. With ``hard_cases: true``:

- **Dynamic sampling.** Such groups are dropped and the batch is refilled with groups of other
  prompts, generated now, up to ``hard_cases_max_refills`` rounds; a group still without variance
  after that is masked out of the loss (its tokens count nowhere).
- **Difficulty.** Every prompt's difficulty (1 - its mean accuracy reward) is kept across epochs,
  averaged with weight ``hard_cases_decay`` on the older value. With ``hard_cases_oversample`` > 0
  each epoch and each refill draws prompts with weight ``1 + oversample x difficulty`` (prompts not
  seen yet count as hardest), so what the model gets wrong comes back more often.
- **Logs**, per dimension, every generation batch: ``hard_cases/<dimension>/kept``, ``/dropped``,
  ``/difficulty``; and ``hard_cases/refilled``, ``hard_cases/masked``. The difficulties are saved
  beside the model as ``hard_cases.json``.

With several processes each refill round generates as many groups on every process (the most any
process needs), so the collective calls inside generation stay in step.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler, split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from medgen.errors import MedgenError

DIFFICULTY_FILE = "hard_cases.json"
LEFT_PADDED = ("prompt_ids", "prompt_mask")
"""Per-row tensors padded on the left (TRL pads prompts left, completions and their log-probs right)."""


class Difficulty:
    """Per-prompt difficulty in [0, 1]: 1 - mean accuracy reward of its completions, averaged over epochs."""

    def __init__(self, decay: float = 0.5) -> None:
        self.decay = decay
        self.values: dict[str, float] = {}

    def update(self, sample_id: str, accuracy: float) -> None:
        hard = min(1.0, max(0.0, 1.0 - accuracy))
        old = self.values.get(sample_id)
        self.values[sample_id] = hard if old is None else self.decay * old + (1 - self.decay) * hard

    def weights(self, ids: list[str], oversample: float) -> torch.Tensor:
        """Draw weights ``1 + oversample x difficulty`` (unseen prompts: difficulty 1)."""
        return torch.tensor([1.0 + oversample * self.values.get(i, 1.0) for i in ids], dtype=torch.float64)


class DifficultySampler(RepeatSampler):
    """TRL's ``RepeatSampler`` whose epochs draw prompts in proportion to their recorded difficulty.

    Until a difficulty is recorded (the first epoch) it is TRL's shuffled order; then each epoch draws
    as many prompts as the dataset holds, with replacement, weighted by ``Difficulty.weights``.
    """

    def __init__(self, *args: Any, ids: list[str], difficulty: Difficulty, oversample: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ids, self.difficulty, self.oversample = ids, difficulty, oversample
        if not self.shuffle:
            self.generator = torch.Generator().manual_seed(self.seed or 0)

    def __iter__(self) -> Any:
        if self.oversample <= 0 or not self.difficulty.values:
            yield from super().__iter__()
            return
        weights = self.difficulty.weights(self.ids, self.oversample)
        drawn = torch.multinomial(
            weights, self.num_samples, replacement=True, generator=self.generator
        ).tolist()
        for start in range(0, self.num_samples - self.batch_size + 1, self.batch_size):
            chunk = drawn[start : start + self.batch_size]
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count


class HardCaseGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` with dynamic sampling and difficulty-weighted prompts (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = self.args
        missing = [c for c in ("id", "dimension") if c not in self.train_dataset.column_names]
        if missing:
            raise MedgenError(
                f"hard_cases needs the dataset columns id and dimension (missing: {', '.join(missing)}); "
                "export it with `medgen export`"
            )
        self.difficulty = Difficulty(config.hard_cases_decay)
        self._ids = [str(i) for i in self.train_dataset["id"]]
        self._dimension_name = _names(self.train_dataset.features["dimension"])
        self._dimensions = [self._dimension_name(d) for d in self.train_dataset["dimension"]]
        self._refill_generator = torch.Generator().manual_seed(config.seed + self.accelerator.process_index)
        self._scores: list[float] = []
        accuracy = self.reward_funcs[0]

        def recorded(*call_args: Any, **call_kwargs: Any) -> list[float]:  # the DPA accuracy, as scored
            scores = accuracy(*call_args, **call_kwargs)
            self._scores = list(scores)
            return scores

        recorded.__name__ = getattr(accuracy, "__name__", "dpa_accuracy")  # TRL logs a reward by its name
        self.reward_funcs[0] = recorded
        groups_per_process = config.generation_batch_size // self.accelerator.num_processes
        if groups_per_process % self.num_generations:
            raise MedgenError(
                "hard_cases needs each process's generation batch to hold whole groups: make "
                f"generation_batch_size / processes ({groups_per_process}) a multiple of num_generations "
                f"({self.num_generations})"
            )

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        dataset = self.train_dataset if dataset is None else dataset
        return DifficultySampler(
            data_source=dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
            ids=[str(i) for i in dataset["id"]],
            difficulty=self.difficulty,
            oversample=self.args.hard_cases_oversample,
        )

    def _scored(self, inputs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[bool]]:
        """Generate and score ``inputs``; record difficulties; which groups have no reward variance."""
        output = super()._generate_and_score_completions(inputs)
        size = self.num_generations
        scores = self._scores if len(self._scores) == len(inputs) else [float("nan")] * len(inputs)
        found = []
        for start in range(0, len(inputs), size):
            group = [s for s in scores[start : start + size] if s == s]
            if group:
                found.append((str(inputs[start]["id"]), sum(group) / len(group)))
        from accelerate.utils import gather_object

        for sample_id, accuracy in gather_object(found):  # every process keeps the same difficulties
            self.difficulty.update(sample_id, accuracy)
        flat = output["advantages"].view(-1, size).abs().amax(dim=1) < 1e-6
        return output, flat.tolist()

    def _draw(self, count: int) -> list[int]:
        weights = self.difficulty.weights(self._ids, self.args.hard_cases_oversample)
        if self.args.hard_cases_oversample <= 0:
            weights = torch.ones_like(weights)
        return torch.multinomial(weights, count, replacement=True, generator=self._refill_generator).tolist()

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        size = self.num_generations
        output, flat = self._scored(inputs)
        dimensions = [
            self._dimension_name(inputs[start]["dimension"]) for start in range(0, len(inputs), size)
        ]
        dropped = Counter(d for d, f in zip(dimensions, flat, strict=True) if f)
        refilled = 0
        for _ in range(self.args.hard_cases_max_refills):
            need = torch.tensor([sum(flat)], device=self.accelerator.device)
            most = int(self.accelerator.gather(need).max().item())
            if most == 0:
                break
            rows = [dict(self.train_dataset[i]) for i in self._draw(most) for _ in range(size)]
            extra, extra_flat = self._scored(rows)
            useful = [g for g, f in enumerate(extra_flat) if not f]
            for g, f in enumerate(extra_flat):
                if f:
                    dropped[self._dimension_name(rows[g * size]["dimension"])] += 1
            slots = [g for g, f in enumerate(flat) if f][: len(useful)]
            if slots:
                output = self._replace_groups(output, extra, list(zip(slots, useful, strict=False)))
                for slot, g in zip(slots, useful, strict=False):
                    flat[slot] = False
                    dimensions[slot] = self._dimension_name(rows[g * size]["dimension"])
                refilled += len(slots)
        masked = [g for g, f in enumerate(flat) if f]
        if masked:  # no variance even after refilling: out of the loss altogether
            mask = output["completion_mask"].clone()
            for g in masked:
                mask[g * size : (g + 1) * size] = 0
            output["completion_mask"] = mask
        output["num_items_in_batch"] = self.accelerator.gather(output["completion_mask"].sum()).sum()
        metrics = self._metrics["train"]
        kept = Counter(d for d, f in zip(dimensions, flat, strict=True) if not f)
        for dimension in sorted(set(self._dimensions)):
            metrics[f"hard_cases/{dimension}/kept"].append(float(kept[dimension]))
            metrics[f"hard_cases/{dimension}/dropped"].append(float(dropped[dimension]))
            known = [
                self.difficulty.values[i]
                for i, d in zip(self._ids, self._dimensions, strict=True)
                if d == dimension and i in self.difficulty.values
            ]
            if known:
                metrics[f"hard_cases/{dimension}/difficulty"].append(sum(known) / len(known))
        metrics["hard_cases/refilled"].append(float(refilled))
        metrics["hard_cases/masked"].append(float(len(masked)))
        return output

    def _replace_groups(
        self, output: dict[str, Any], extra: dict[str, Any], pairs: list[tuple[int, int]]
    ) -> dict[str, Any]:
        """``output`` with group ``slot`` replaced by group ``g`` of ``extra``, for each (slot, g)."""
        size = self.num_generations
        a, b = split_pixel_values_by_grid(output), split_pixel_values_by_grid(extra)
        rows = len(output["advantages"])
        source = [(a, i) for i in range(rows)]
        for slot, g in pairs:
            for k in range(size):
                source[slot * size + k] = (b, g * size + k)
        merged: dict[str, Any] = {}
        for key, value in a.items():
            if (
                value is None
                or (isinstance(value, torch.Tensor) and value.ndim == 0)
                or key == "num_items_in_batch"
            ):
                merged[key] = value
            elif isinstance(value, list):
                merged[key] = [part[key][i] for part, i in source]
            elif isinstance(value, torch.Tensor) and value.shape[0] == rows:
                rows_of_key = [part[key][i] for part, i in source]
                pad = (
                    self._tokenizer.pad_token_id
                    if key.endswith("_ids") and self._tokenizer.pad_token_id
                    else 0
                )
                merged[key] = _stack_rows(rows_of_key, left=key in LEFT_PADDED, key=key, pad=pad)
            else:
                raise MedgenError(f"hard_cases cannot merge the generation output {key!r} of this model")
        return unsplit_pixel_values_by_grid(merged)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            folder = Path(output_dir or self.args.output_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / DIFFICULTY_FILE).write_text(
                json.dumps(self.difficulty.values, indent=1, sort_keys=True)
            )


def _names(feature: Any) -> Any:
    """A dimension's name: exports store it as a ``ClassLabel`` (an integer), other datasets as text."""
    names = getattr(feature, "names", None)
    return (lambda value: names[value] if isinstance(value, int) else str(value)) if names else str


def _stack_rows(rows: list[torch.Tensor], left: bool, key: str, pad: int = 0) -> torch.Tensor:
    """Stack per-row tensors, padding a sequence dimension of unequal length (left or right) with ``pad``."""
    if rows[0].ndim == 0 or all(row.shape == rows[0].shape for row in rows):
        return torch.stack(rows)
    if rows[0].ndim != 1 or any(row.ndim != 1 for row in rows):
        raise MedgenError(
            f"hard_cases cannot merge rows of {key!r} with shapes {sorted({tuple(r.shape) for r in rows})}"
        )
    width = max(len(row) for row in rows)
    padded = [
        torch.nn.functional.pad(row, (width - len(row), 0) if left else (0, width - len(row)), value=pad)
        for row in rows
    ]
    return torch.stack(padded)
