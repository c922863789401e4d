"""How much annotation effort does a screener's pre-fill save? Simulated annotators, a documented cost model.

Truth: synthetic candidates with injected defects (``medgen generate --backend synthetic``), the
screener: medgen's simulated screener (``annotation.prefill.simulated_prefill``: the truth with
screener-like errors and a score that is lower where it erred). A **decision** is one candidate in
one dimension (which tags, or none): 16 per task.

Cost model, per decision, in units of "answering blank" (the published measurements it rests on:
the Segment Anything data engine went from 34 s per mask drawn to 14 s per mask corrected from a
model's proposal, 0.41; Papadopoulos et al., CVPR 2016, found verifying a box 6 to 9 times faster
than drawing one; we take the conservative figure):

- blank answer: cost 1.0, wrong with probability 0.10;
- verifying a correct pre-fill: cost 0.4, wrongly changed with probability 0.03;
- a wrong pre-fill: caught with probability 0.8 (then corrected at cost 1.2, dearer than blank: notice,
  undo, answer; wrong with probability 0.10), or accepted (anchoring) at cost 0.4.

Two questions:

1. effort (cost units per task, summed over annotators) to reach a target label accuracy with a
   majority of k = 1, 2, 3 or 5 annotators per task, answering blank vs verifying pre-fills;
2. one pass of one annotator over the queue in screener order, least confident first, vs random:
   tasks not reached keep the pre-fill; the share of the queue reviewed (effort) to reach three
   quarters of the accuracy a full pass adds to the screener's, and the accuracy after 20 %.

    .venv/bin/python benchmarks/preannotation_savings.py [--sources 400] [--target 0.97] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.taxonomy import TAXONOMY  # noqa: E402

DIMENSIONS = [d.id for d in TAXONOMY.dimensions]
WRONG = frozenset({"__other__"})  # a wrong answer when the truth is "no defect"


@dataclass(frozen=True)
class CostModel:
    blank: float = 1.0
    blank_error: float = 0.10
    verify: float = 0.4
    verify_error: float = 0.03
    catch: float = 0.8
    fix: float = 1.2


@dataclass
class Task:
    source_id: str
    truth: list[frozenset[str]]  # per decision
    prefill: list[frozenset[str]]
    score: float


def tasks_from_labels(items: list[tuple[str, Any, Any, float]]) -> list[Task]:
    """(source id, truth labels, pre-fill labels, score) -> decisions per task."""
    tasks = []
    for source_id, truth, prefill, score in items:
        t = [frozenset(label.defects_in(d)) for label in truth for d in DIMENSIONS]
        p = [frozenset(label.defects_in(d)) for label in prefill for d in DIMENSIONS]
        tasks.append(Task(source_id, t, p, score))
    return tasks


def tasks_from_workspace(workspace: Any) -> list[Task]:
    from annotation.prefill import known_labels, simulated_prefill

    items = []
    for source in workspace.catalog.sources():
        candidates = sorted(workspace.catalog.candidates(source.id), key=lambda c: c.slot)
        truth = known_labels(candidates)
        prefill = simulated_prefill(source.id, candidates)
        if truth is not None and prefill is not None:
            items.append((source.id, truth, prefill.labels, prefill.score))
    return tasks_from_labels(items)


def _wrong(truth: frozenset[str]) -> frozenset[str]:
    return WRONG if not truth else frozenset()


def answer(
    truth: frozenset[str], prefill: frozenset[str] | None, cost: CostModel, rng: random.Random
) -> tuple[frozenset[str], float]:
    """One annotator's answer to one decision and its cost."""
    if prefill is None:
        return (truth if rng.random() >= cost.blank_error else _wrong(truth)), cost.blank
    if prefill == truth:
        return (truth if rng.random() >= cost.verify_error else _wrong(truth)), cost.verify
    if rng.random() < cost.catch:
        return (truth if rng.random() >= cost.blank_error else _wrong(truth)), cost.fix
    return prefill, cost.verify  # anchored on the wrong pre-fill


def majority(answers: list[frozenset[str]]) -> frozenset[str]:
    return Counter(answers).most_common(1)[0][0]  # ties: the first answer given


def annotate(tasks: list[Task], k: int, prefilled: bool, cost: CostModel, seed: int) -> tuple[float, float]:
    """(label accuracy over decisions, mean cost per task) with k annotators per task and majority vote."""
    rng = random.Random(seed)
    right = total = 0
    spent = 0.0
    for task in tasks:
        for truth, prefill in zip(task.truth, task.prefill, strict=True):
            votes = []
            for _ in range(k):
                given, c = answer(truth, prefill if prefilled else None, cost, rng)
                votes.append(given)
                spent += c
            right += majority(votes) == truth
            total += 1
    return right / total, spent / len(tasks)


def one_pass(
    tasks: list[Task], order: str, cost: CostModel, seed: int, steps: int = 20
) -> list[dict[str, float]]:
    """Accuracy and cost when one annotator reviews the first share of the queue; the rest keep the pre-fill."""
    rng = random.Random(seed)
    queue = sorted(tasks, key=lambda t: t.score) if order == "uncertainty" else rng.sample(tasks, len(tasks))
    reviewed: list[tuple[list[frozenset[str]], float]] = []
    for task in queue:
        results, spent = [], 0.0
        task_rng = random.Random(f"{seed}/{task.source_id}")  # the same review whatever the order
        for truth, prefill in zip(task.truth, task.prefill, strict=True):
            given, c = answer(truth, prefill, cost, task_rng)
            results.append(given)
            spent += c
        reviewed.append((results, spent))
    curve = []
    decisions = sum(len(t.truth) for t in tasks)
    for step in range(steps + 1):
        n = round(len(queue) * step / steps)
        right = sum(
            g == t
            for (given, _), task in zip(reviewed[:n], queue, strict=False)
            for g, t in zip(given, task.truth, strict=True)
        )
        right += sum(p == t for task in queue[n:] for p, t in zip(task.prefill, task.truth, strict=True))
        curve.append(
            {
                "reviewed": n / len(queue),
                "accuracy": right / decisions,
                "cost_per_task": sum(c for _, c in reviewed[:n]) / len(queue),
            }
        )
    return curve


def first_reaching(curve: list[dict[str, float]], target: float, key: str) -> float | None:
    return next((point[key] for point in curve if point["accuracy"] >= target), None)


def run(tasks: list[Task], target: float, seed: int = 0, cost: CostModel | None = None) -> dict[str, Any]:
    cost = cost or CostModel()
    rows = []
    for prefilled in (False, True):
        for k in (1, 2, 3, 5):
            accuracy, per_task = annotate(tasks, k, prefilled, cost, seed + k)
            rows.append(
                {
                    "mode": "pre-filled" if prefilled else "blank",
                    "annotators": k,
                    "accuracy": accuracy,
                    "cost_per_task": per_task,
                }
            )
    best = {}
    for mode in ("blank", "pre-filled"):
        reaching = [r for r in rows if r["mode"] == mode and r["accuracy"] >= target]
        best[mode] = min(reaching, key=lambda r: r["cost_per_task"]) if reaching else None
    curves = {order: one_pass(tasks, order, cost, seed) for order in ("uncertainty", "random")}
    screener = sum(p == t for task in tasks for p, t in zip(task.prefill, task.truth, strict=True)) / sum(
        len(t.truth) for t in tasks
    )
    # One pass cannot beat one annotator's accuracy: its target is three quarters of the way from the
    # screener alone (nothing reviewed) to the whole queue reviewed.
    full = curves["random"][-1]["accuracy"]
    pass_target = screener + 0.75 * (full - screener)
    reach = {order: first_reaching(curve, pass_target, "reviewed") for order, curve in curves.items()}
    at_20 = {
        order: next(p["accuracy"] for p in curve if p["reviewed"] >= 0.2) for order, curve in curves.items()
    }
    return {
        "tasks": len(tasks),
        "target": target,
        "cost_model": asdict(cost),
        "screener_accuracy": screener,
        "majority": rows,
        "cheapest": best,
        "effort_ratio": (best["blank"]["cost_per_task"] / best["pre-filled"]["cost_per_task"])
        if best["blank"] and best["pre-filled"]
        else None,
        "one_pass": curves,
        "pass_target": pass_target,
        "reviewed_to_target": reach,
        "accuracy_at_20_percent": at_20,
        "order_ratio": (reach["random"] / reach["uncertainty"])
        if reach["random"] and reach["uncertainty"]
        else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=400)
    parser.add_argument("--target", type=float, default=0.97, help="label accuracy per decision to reach")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.sources.ingest import add_sources
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace

    with tempfile.TemporaryDirectory() as tmp:
        workspace = init_workspace(Path(tmp) / "ws")
        add_sources(workspace, write_samples(Path(tmp) / "photos", args.sources, seed=args.seed))
        generate(workspace, GenerationConfig(backend="synthetic", resolution=64, seed=args.seed))
        tasks = tasks_from_workspace(workspace)
        workspace.close()
    result = run(tasks, args.target, args.seed)
    print(
        f"{result['tasks']} tasks, {result['tasks'] * 16} decisions; screener accuracy {result['screener_accuracy']:.3f}; target {args.target}"
    )
    print("| mode | annotators | label accuracy | cost per task |")
    print("|---|---|---|---|")
    for r in result["majority"]:
        print(f"| {r['mode']} | {r['annotators']} | {r['accuracy']:.4f} | {r['cost_per_task']:.2f} |")
    for mode, row in result["cheapest"].items():
        print(
            f"cheapest {mode} reaching the target: "
            + (f"{row['annotators']} annotators, {row['cost_per_task']:.2f} per task" if row else "none")
        )
    ratio = result["effort_ratio"]
    print(
        f"effort ratio blank / pre-filled at the target: {ratio:.2f}"
        if ratio
        else "effort ratio: n/a (a mode never reaches the target)"
    )
    reach = result["reviewed_to_target"]
    print(
        f"one pass (one annotator, the rest keep the pre-fill), to reach {result['pass_target']:.4f}: "
        + ", ".join(
            f"{order} {'never' if share is None else f'{share:.0%}'}" for order, share in reach.items()
        )
        + (f"; random / uncertainty {result['order_ratio']:.2f}" if result["order_ratio"] else "")
    )
    print(
        "accuracy after reviewing 20% of the queue: "
        + ", ".join(f"{order} {value:.4f}" for order, value in result["accuracy_at_20_percent"].items())
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=lambda s: sorted(s)))
    return result


if __name__ == "__main__":
    main()
