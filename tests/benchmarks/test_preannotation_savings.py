"""The pre-annotation savings simulation: its cost model and orderings behave as documented."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from schemas import CandidateLabel

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "preannotation_savings.py"


@pytest.fixture(scope="module")
def savings():
    spec = importlib.util.spec_from_file_location("preannotation_savings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["preannotation_savings"] = module
    spec.loader.exec_module(module)
    return module


def _tasks(savings, count: int, wrong_every: int):
    """Tasks whose pre-fill is wrong on every ``wrong_every``-th one, with a score that says so."""
    ok = CandidateLabel(acceptable=True)
    floating = CandidateLabel(defects=("floating",), acceptable=False)
    items = []
    for i in range(count):
        truth = (floating, ok, ok, ok)
        wrong = i % wrong_every == 0
        prefill = (ok, floating, floating, floating) if wrong else truth  # four wrong decisions
        items.append((f"s{i}", truth, prefill, 0.2 if wrong else 0.9))
    return savings.tasks_from_labels(items)


def test_a_good_screener_saves_effort_and_uncertainty_first_finds_its_errors(savings):
    tasks = _tasks(savings, 200, wrong_every=5)
    result = savings.run(tasks, target=0.97)
    # Four wrong decisions of sixteen on every fifth task.
    assert result["screener_accuracy"] == pytest.approx(1 - 4 / 16 / 5)
    assert result["effort_ratio"] > 1.5
    curves = result["one_pass"]
    # Same review of each task whatever the order: a full pass ends at the same accuracy.
    assert curves["uncertainty"][-1]["accuracy"] == curves["random"][-1]["accuracy"]
    assert result["reviewed_to_target"]["uncertainty"] < result["reviewed_to_target"]["random"]
    assert result["accuracy_at_20_percent"]["uncertainty"] > result["accuracy_at_20_percent"]["random"]


def test_costs_follow_the_model(savings):
    tasks = _tasks(savings, 50, wrong_every=10**9)  # the pre-fill is always right (task 0 aside)
    cost = savings.CostModel()
    blank_accuracy, blank_cost = savings.annotate(tasks, 1, False, cost, seed=0)
    assert blank_cost == pytest.approx(16 * cost.blank)
    _, verify_cost = savings.annotate(tasks[1:], 1, True, cost, seed=0)
    assert verify_cost == pytest.approx(16 * cost.verify)
    assert 0.85 < blank_accuracy < 0.95  # 10 % blank errors
