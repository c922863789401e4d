"""Hard-case mining's difficulty record and difficulty-weighted sampling (the trainer run is in test_train)."""

from __future__ import annotations

from collections import Counter

import pytest

from medgen.errors import MedgenError
from training.hard_cases import Difficulty, DifficultySampler


def test_difficulty_is_one_minus_accuracy_averaged_over_epochs() -> None:
    difficulty = Difficulty(decay=0.5)
    difficulty.update("a", 0.0)  # all wrong
    difficulty.update("b", 1.0)  # all right
    assert difficulty.values == {"a": 1.0, "b": 0.0}
    difficulty.update("a", 1.0)  # learnt it in the next epoch: half-way there
    assert difficulty.values["a"] == 0.5
    assert difficulty.weights(["a", "b", "unseen"], oversample=4).tolist() == [3.0, 1.0, 5.0]


def test_sampler_oversamples_in_proportion_to_recorded_difficulty() -> None:
    ids = [f"q{i}" for i in range(10)]
    difficulty = Difficulty()
    sampler = DifficultySampler(
        ids,
        mini_repeat_count=4,
        batch_size=2,
        repeat_count=1,
        seed=0,
        ids=ids,
        difficulty=difficulty,
        oversample=4,
    )
    first = list(sampler)  # nothing recorded yet: TRL's shuffled epoch, every prompt once, in groups of 4
    assert sorted(first[::4]) == list(range(10)) and all(first[i] == first[i - i % 4] for i in range(40))
    for i, sample_id in enumerate(ids):
        difficulty.update(sample_id, 0.0 if i < 2 else 1.0)  # q0, q1 always wrong; the rest always right
    drawn = Counter()
    for _ in range(300):
        epoch = list(sampler)
        assert len(epoch) == len(sampler) == 40
        drawn.update(epoch[::4])
    hard, easy = (drawn[0] + drawn[1]) / 2, sum(drawn[i] for i in range(2, 10)) / 8
    assert 4.0 < hard / easy < 6.2  # expected 1 + 4 x 1 = 5 times as often


def test_hard_case_settings_are_checked() -> None:
    from training.grpo_config import GRPOConfig

    with pytest.raises(MedgenError, match="hard_cases_decay"):
        GRPOConfig(output_dir="/tmp/x", hard_cases=True, hard_cases_decay=1.5, use_cpu=True)
    with pytest.raises(MedgenError, match="must not be negative"):
        GRPOConfig(output_dir="/tmp/x", hard_cases=True, hard_cases_oversample=-1, use_cpu=True)
