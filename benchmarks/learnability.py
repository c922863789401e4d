"""Does the training stage learn the task, not only the answer format? A CPU benchmark with controls.

One run, end to end through medgen's own code paths:

1. a synthetic workspace: sample product photos, four candidates each from the ``synthetic`` backend
   (known injected defects, one per defective candidate, of the kinds visible at the training
   resolution), exported with ``--labels injected`` and by-source splits (70 / 5 / 25, so the test
   split holds enough sources for a useful interval);
2. a tiny random-weight Qwen2.5-VL trained with ``train sft`` (the ``tiny/demo`` recipe, at a larger
   image size and more steps), then ``train grpo`` from it (DPA reward);
3. two controls, trained exactly like the SFT model on the same rows with the link between images and
   answers broken: ``shuffled_labels`` (each dimension's answers and reasoning moved to other sources'
   questions of that dimension) and ``permuted_images`` (each source's four candidate images put in
   another order, the answers left where they were);
4. ``medgen eval`` of every model on the untouched test split: exact match per dimension and
   "Overall (4 dimensions)", the source-bootstrap 95 % interval, and the random and majority baselines.

A model learns the task only if it beats majority and both controls; the controls tell a learnt prior
(which they reach too) from reading the images. Prints one table; ``--output FILE`` writes it as JSON
(percentages). Deterministic for a ``--seed`` on one machine.

    PYTHONPATH=. .venv/bin/python benchmarks/learnability.py [--seed 0] [--output learnability.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

VISIBLE_DEFECTS = ("color_shifted", "lighting_inconsistent", "scale_wrong", "product_cropped", "visible_seam")
"""Injected kinds, one or two per dimension, among those seen at 112 px. A kind the model does not learn
stays in (its dimension then scores at majority); kinds left out are smaller on screen at this size
(``text_garbled`` blurs small print, ``shadow_direction_wrong`` moves a shadow a few pixels)."""

DEFECTIVE_PER_SOURCE = (1, 1)
"""One defective candidate per source: each dimension's question has one answer letter (the odd one out)."""

LABEL_COLUMNS = ("answer", "completion", "rationale", "defects", "acceptable")
"""What the shuffled-labels control moves between questions of one dimension."""

ROW_NAMES = {
    "sft_only": "sft_only",
    "overall": "sft_grpo",
    "shuffled_labels": "shuffled_labels",
    "permuted_images": "permuted_images",
}
"""Per-dimension column of each trained model (the JSON's ``overall`` is the SFT + GRPO model)."""

HEADLINE = "dimensions"
"""The eval cell of "Overall (4 dimensions)": exact match over the four dimensions' questions."""


def build_export(root: Path, sources: int, resolution: int, seed: int) -> Path:
    """Workspace, sources, synthetic candidates, and an export with injected labels; returns the export folder."""
    from medgen.export.config import ExportConfig
    from medgen.export.dataset import export_dataset
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.sources.ingest import add_sources
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace

    workspace = init_workspace(root / "workspace")
    add_sources(workspace, write_samples(root / "photos", sources, seed=seed))
    synthetic = {
        "resolution": max(128, resolution),
        "strength": (0.8, 1.0),
        "max_defects_per_candidate": 1,
        "defective_per_source": DEFECTIVE_PER_SOURCE,
        "defects": VISIBLE_DEFECTS,
    }
    generate(workspace, GenerationConfig(backend="synthetic", seed=seed, synthetic=synthetic))
    config = ExportConfig(
        version="v1", labels="injected", rationale="template", train=0.7, validation=0.05, test=0.25
    )
    return export_dataset(workspace, config).path


def control_export(export: Path, target: Path, kind: str, seed: int) -> Path:
    """A copy of ``export`` whose train split has images and answers unlinked (``kind``); other splits unchanged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(export, target)
    (train_file,) = sorted((target / "data").glob("train-*.parquet"))
    table = pq.read_table(train_file)
    rng = np.random.default_rng(seed)
    rows = table.to_pylist()
    if kind == "shuffled_labels":
        for dimension in sorted({row["dimension"] for row in rows}):
            where = [i for i, row in enumerate(rows) if row["dimension"] == dimension]
            moved = rng.permutation(where)
            labels = [{c: rows[j][c] for c in LABEL_COLUMNS} for j in moved]
            for i, label in zip(where, labels, strict=True):
                rows[i].update(label)
    elif kind == "permuted_images":
        orders: dict[str, list[int]] = {}
        for row in rows:  # one order per source, so all its questions agree on where each image went
            order = orders.setdefault(row["source_id"], _derangement(rng, len(row["images"]) - 1))
            row["images"] = [row["images"][0], *(row["images"][1 + k] for k in order)]
    else:
        raise ValueError(f"unknown control {kind!r}")
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), train_file)
    return target


def _derangement(rng: np.random.Generator, n: int) -> list[int]:
    """A random order of ``range(n)`` that moves every item (no candidate keeps its own image)."""
    while True:
        order = [int(k) for k in rng.permutation(n)]
        if all(k != i for i, k in enumerate(order)):
            return order


def train_stage(stage: str, out: Path, overrides: dict[str, Any]) -> Path:
    """``medgen train <stage> --recipe tiny/demo`` with ``overrides``: the CLI's own config and run."""
    from training.config import load_config
    from training.stages import config_class, train

    config = load_config(config_class(stage), "tiny/demo", stage, {"output_dir": str(out), **overrides})
    return train(stage, config)


def evaluate(model: Path, export: Path, out: Path, seed: int) -> dict[str, Any]:
    """``medgen eval`` on the test split: the model's row and the baselines', by name."""
    from training.evaluation.config import EvalConfig
    from training.evaluation.evaluate import run_eval

    config = EvalConfig(
        model=str(model), dataset=str(export), output_dir=out, max_new_tokens=160, batch_size=16, seed=seed
    )
    return {row.kind if row.kind != "checkpoint" else "model": row.scores for row in run_eval(config).models}


def cell(scores: dict[str, Any], key: str = HEADLINE) -> dict[str, float | None]:
    """One eval cell as percentages: accuracy and its 95 % interval."""
    score = scores[key]
    low, high = score.accuracy_ci95 or (None, None)
    pct = lambda v: None if v is None else round(100 * v, 1)  # noqa: E731
    return {"model": pct(score.accuracy), "ci_low": pct(low), "ci_high": pct(high), "n": score.n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the models and the controls")
    parser.add_argument("--sources", type=int, default=600, help="synthetic sources (4 candidates each)")
    parser.add_argument("--resolution", type=int, default=112, help="image side the model sees, pixels")
    parser.add_argument("--sft-steps", type=int, default=2000, help="SFT steps of 8 questions")
    parser.add_argument("--grpo-steps", type=int, default=40, help="GRPO steps (2 questions x 4 answers)")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="SFT learning rate")
    parser.add_argument(
        "--candidate-orders",
        type=int,
        default=1,
        help="SFT shows each question in this many orders of its candidates (`candidate_orders`; 1: as exported;"
        " 4 was tried and did not help: benchmarks/README.md)",
    )
    parser.add_argument("--output", type=Path, help="write the summary here as JSON")
    parser.add_argument("--workdir", type=Path, help="keep the workspace, models and eval outputs here")
    args = parser.parse_args()

    started = time.perf_counter()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="medgen-learnability-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        summary = run(args, root, started)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print_table(summary)
    if args.output:
        args.output.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"written: {args.output}")


def run(args: argparse.Namespace, root: Path, started: float) -> dict[str, Any]:
    from training.tiny import build_tiny_vlm

    export = build_export(root, args.sources, args.resolution, args.seed)
    print(f"export {export} ready after {time.perf_counter() - started:.0f} s", flush=True)
    base = build_tiny_vlm(root / "model", seed=args.seed)
    sft = {
        "model_name_or_path": str(base),
        "image_max_pixels": args.resolution**2,
        "max_steps": args.sft_steps,
        "save_steps": args.sft_steps,
        "learning_rate": args.learning_rate,
        "per_device_train_batch_size": 8,
        "warmup_steps": max(10, args.sft_steps // 20),
        "logging_steps": 25,
        "seed": args.seed,
        "candidate_orders": args.candidate_orders,
    }
    scores: dict[str, dict[str, Any]] = {}
    sft_dir = train_stage("sft", root / "sft", {"dataset": str(export), **sft})
    scores["sft_only"] = evaluate(sft_dir, export, root / "eval" / "sft", args.seed)
    grpo = {
        "model_name_or_path": str(sft_dir),
        "dataset": str(export),
        "image_max_pixels": args.resolution**2,
        "max_steps": args.grpo_steps,
        "save_steps": args.grpo_steps,
        "logging_steps": 5,
        "seed": args.seed,
    }
    grpo_dir = train_stage("grpo", root / "grpo", grpo)
    scores["overall"] = evaluate(grpo_dir, export, root / "eval" / "grpo", args.seed)
    for kind in ("shuffled_labels", "permuted_images"):
        data = control_export(export, root / "controls" / kind, kind, args.seed)
        model = train_stage("sft", root / f"sft-{kind}", {"dataset": str(data), **sft})
        scores[kind] = evaluate(model, export, root / "eval" / kind, args.seed)  # the true test answers
    return summarise(scores, args, time.perf_counter() - started)


def summarise(scores: dict[str, dict[str, Any]], args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """The JSON the issue asks for: headline cells with their baselines, controls, per dimension, time."""
    baselines = scores["overall"]

    def row(name: str) -> dict[str, Any]:
        out = cell(scores[name]["model"])
        out["majority"] = cell(baselines["majority"])["model"]
        out["random"] = cell(baselines["random"])["model"]
        return out

    dimensions = [k for k in baselines["majority"] if k not in ("all", HEADLINE)]
    return {
        "overall": row("overall"),
        "sft_only": row("sft_only"),
        "controls": {kind: row(kind) for kind in ("shuffled_labels", "permuted_images")},
        "majority_ci": [cell(baselines["majority"])["ci_low"], cell(baselines["majority"])["ci_high"]],
        "per_dimension": {
            d: {
                **{ROW_NAMES[name]: cell(scores[name]["model"], d)["model"] for name in scores},
                "majority": cell(baselines["majority"], d)["model"],
                "random": cell(baselines["random"], d)["model"],
                "n": cell(baselines["majority"], d)["n"],
            }
            for d in dimensions
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": round(seconds),
    }


def print_table(summary: dict[str, Any]) -> None:
    head = summary["overall"]
    print(f"\nOverall (4 dimensions), test split, {head['n']} questions; 95 % interval by source bootstrap")
    print(f"{'model':<28} {'accuracy':>9}  {'95 % interval':>15}")
    rows = [
        ("SFT + DPA-GRPO", head),
        ("SFT only", summary["sft_only"]),
        ("control: shuffled labels", summary["controls"]["shuffled_labels"]),
        ("control: permuted images", summary["controls"]["permuted_images"]),
    ]
    for name, r in rows:
        print(f"{name:<28} {r['model']:>8.1f}%  [{r['ci_low']:>5.1f}, {r['ci_high']:>5.1f}]")
    low, high = summary["majority_ci"]
    print(f"{'majority baseline':<28} {head['majority']:>8.1f}%  [{low:>5.1f}, {high:>5.1f}]")
    print(f"{'random baseline':<28} {head['random']:>8.1f}%")
    print("\nper dimension (accuracy %):")
    names = [*summary["per_dimension"][next(iter(summary["per_dimension"]))].keys()]
    print(f"{'dimension':<24}" + "".join(f"{n[:15]:>16}" for n in names))
    for d, values in summary["per_dimension"].items():
        print(f"{d:<24}" + "".join(f"{'-' if v is None else v:>16}" for v in values.values()))
    print(f"\n{summary['seconds']} s")


if __name__ == "__main__":
    main()
