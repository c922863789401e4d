"""DPA and format rewards over a table of cases, the lambda schedule, and the configured reward TRL calls."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from training.rewards import (
    dpa_accuracy,
    dpa_score,
    format_reward,
    lambda_schedule,
    make_dpa_accuracy,
    parse_answer,
)


def answer(letters: str) -> str:
    return f"<think>I compare the images.</think><answer>{letters}</answer>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (answer("A,C"), {"A", "C"}),
        (answer("c, a"), {"A", "C"}),  # lower case and spaces tolerated
        (answer("A,A,C"), {"A", "C"}),  # duplicates collapse
        (answer("A C"), {"A", "C"}),
        (answer(""), None),  # empty
        (answer("E"), None),  # not an option
        (answer("A and C"), None),
        ("A,C", None),  # no <answer> tag
        ("<answer>B</answer> then <answer>D</answer>", {"D"}),  # the last answer counts
        ("", None),
    ],
)
def test_parse_answer(text: str, expected: set[str] | None) -> None:
    assert parse_answer(text) == expected


@pytest.mark.parametrize(
    ("completion", "gold", "lam", "expected"),
    [
        (answer("A,C"), "A,C", 0.5, 1.0),  # exact: full credit whatever lambda
        (answer("C,A"), "A,C", 0.0, 1.0),
        (answer("a,c"), "A,C", 0.5, 1.0),  # lower case
        (answer("A,A,C"), "A,C", 0.5, 1.0),  # duplicated letters
        (answer("A"), "A,C", 0.5, 0.5 * 0.5),  # half the gold, no false positive
        (answer("A,B"), "A,C", 1.0, 0.5 - 0.5),  # one hit, one of two negatives wrong
        (answer("A,B,C"), "A,C", 1.0, 1.0 - 0.5),
        (answer("B,D"), "A,C", 1.0, 0.0),  # all wrong, clipped at 0
        (answer("A,B,C"), "A,B,C,D", 1.0, 0.75),  # |G| = N: no false-positive term
        (answer("A,B,C,D"), "A,B,C,D", 0.5, 1.0),
        (answer("A,B,C,D"), "B", 1.0, 1.0 - 1.0),  # guessing everything earns nothing
        (answer(""), "A", 1.0, 0.0),  # empty answer
        ("no answer at all", "A", 1.0, 0.0),  # unparseable
        (answer("Z"), "A", 1.0, 0.0),
    ],
)
def test_dpa_score_table(completion: str, gold: str, lam: float, expected: float) -> None:
    state = SimpleNamespace(global_step=0, max_steps=10)
    reward = make_dpa_accuracy(lambda0=lam, schedule="constant")
    assert reward([completion], [gold], trainer_state=state) == pytest.approx([expected])
    assert dpa_score(parse_answer(completion), set(gold.split(",")), lam) == pytest.approx(expected)


def test_dpa_accuracy_decays_partial_credit_with_progress() -> None:
    partial, exact = answer("A"), answer("A,C")
    early = SimpleNamespace(global_step=0, max_steps=100)
    late = SimpleNamespace(global_step=100, max_steps=100)
    assert dpa_accuracy([partial, exact], ["A,C", "A,C"], trainer_state=early) == pytest.approx([0.25, 1.0])
    assert dpa_accuracy([partial, exact], ["A,C", "A,C"], trainer_state=late) == pytest.approx([0.0, 1.0])
    # no trainer state (trl grpo without medgen, or evaluation): progress 0
    assert dpa_accuracy([partial], ["A,C"]) == pytest.approx([0.25])


def test_dpa_accuracy_reads_conversational_completions() -> None:
    message = [{"role": "assistant", "content": answer("B")}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": answer("B")}]}]
    assert dpa_accuracy([message, parts], ["B", "B"]) == [1.0, 1.0]


@pytest.mark.parametrize(
    ("schedule", "progress", "expected"),
    [
        ("constant", 0.7, 0.5),
        ("linear", 0.0, 0.5),
        ("linear", 0.5, 0.25),
        ("linear", 1.0, 0.0),
        ("cosine", 0.0, 0.5),
        ("cosine", 0.5, 0.25),
        ("cosine", 1.0, 0.0),
        ("linear", 1.5, 0.0),  # progress clipped to [0, 1]
    ],
)
def test_lambda_schedule(schedule: str, progress: float, expected: float) -> None:
    assert lambda_schedule(progress, 0.5, schedule) == pytest.approx(expected, abs=1e-12)


def test_lambda_schedule_is_monotone_and_bad_values_are_refused() -> None:
    values = [lambda_schedule(t / 10, 0.8, "cosine") for t in range(11)]
    assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True))
    assert math.isclose(values[0], 0.8)
    with pytest.raises(ValueError, match="lambda0"):
        lambda_schedule(0.0, 1.5)
    with pytest.raises(ValueError, match="schedule"):
        make_dpa_accuracy(0.5, "exponential")


def test_configured_reward_keeps_the_name_trl_logs() -> None:
    assert make_dpa_accuracy(0.3, "linear").__name__ == "dpa_accuracy"


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (answer("A,C"), 1.0),
        ("<think>x</think>\n<answer>b</answer>", 1.0),
        ("  " + answer("D") + "\n", 1.0),
        (answer(""), 0.0),  # empty answer
        ("<answer>A</answer>", 0.0),  # no reasoning
        ("<think></think><answer>A</answer>", 0.0),  # empty reasoning
        (answer("A") + " extra", 0.0),  # trailing text
        ("<think>a<think>b</think><answer>A</answer>", 0.0),  # nested tag
        (answer("A,E"), 0.0),
        (answer("C,A"), 0.0),  # unsorted (issue #15)
        (answer("A,A"), 0.0),  # repeated
        (answer("A, c"), 1.0),  # spaces and case are tolerated; order and uniqueness are not
        ("", 0.0),
    ],
)
def test_format_reward_table(completion: str, expected: float) -> None:
    assert format_reward([completion]) == [expected]
