"""`medgen eval`: score a checkpoint, an OpenAI-compatible endpoint and the baselines; or compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TaskID
from rich.table import Table

from medgen.console import build_config, config_options, console, progress
from medgen.errors import MedgenError
from training.evaluation.config import EvalConfig


@config_options(EvalConfig, skip=("dataset", "output_dir"))
def eval_cli(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="The exported dataset (local export folder or Hub id); with --compare, two or more results.json files.",
            show_default=False,
        ),
    ] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where the results go.")] = Path(
        "eval"
    ),
    compare: Annotated[
        bool, typer.Option("--compare", help="Put the results.json files given as arguments side by side.")
    ] = False,
    options: dict[str, Any] | None = None,
) -> None:
    """Score models on a split: exact-match accuracy per dimension and overall, DPA, baselines, a chart.

    Writes results.json, results.md, results.png and predictions.jsonl to --output-dir. Reruns resume: answers already generated are read back from --output-dir/raw/.
    """
    from training.evaluation.evaluate import run_eval
    from training.evaluation.report import compare_runs

    if compare:
        rows = compare_runs([Path(p) for p in inputs or []], output_dir)
        console.print(
            f"compared {len(rows)} rows: {output_dir / 'comparison.md'}, {output_dir / 'comparison.png'}"
        )
        return
    if not inputs or len(inputs) != 1:
        raise MedgenError(
            "give exactly one dataset (export folder or Hub id), or --compare with results.json files"
        )
    config = build_config(EvalConfig, options or {}, dataset=inputs[0], output_dir=output_dir)
    with progress() as bar:
        tasks: list[TaskID] = []

        def on_progress(description: str, total: int | None, advance: int) -> None:
            if total is not None:
                tasks.append(bar.add_task(description, total=total, unit="questions"))
            bar.advance(tasks[-1], advance)

        results = run_eval(config, on_progress)
    _print_results(results, output_dir)


def _print_results(results: Any, output_dir: Path) -> None:
    """The accuracy table per model and dimension, and where the files went."""
    from training.evaluation.metrics import ALL, DIMENSIONS
    from training.evaluation.report import columns, percent

    shown = columns(results.models)
    table = Table(title=f"exact-match accuracy (%) on {results.split}, {results.num_questions} questions")
    table.add_column("model")
    for cell in shown:
        short = {"overall": "publishable", DIMENSIONS: "overall (4 dim.)", ALL: "all"}.get(
            cell, cell.split("_")[0]
        )
        table.add_column(short, justify="right")
    table.add_column("DPA", justify="right")
    for row in results.models:
        dpa = row.scores[DIMENSIONS].dpa
        table.add_row(
            row.name, *(percent(row.scores[c].accuracy) for c in shown), "–" if dpa is None else f"{dpa:.3f}"
        )
    console.print(table)
    console.print(
        f"wrote {output_dir}/results.json, results.md (with 95% CIs), results.png, predictions.jsonl"
    )
