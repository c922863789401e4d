"""`medgen eval`: score a checkpoint, an OpenAI-compatible endpoint and the baselines; or compare runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import TaskID
from rich.table import Table

from medgen.console import EndpointOpt, console, progress
from medgen.errors import MedgenError, config_error


def eval_cli(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="The exported dataset (local export folder or Hub id); with --compare, two or more results.json files.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score.")] = "test",
    revision: Annotated[
        str | None, typer.Option(help="Dataset revision on the Hub (tag such as v1.0, or commit).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint (local folder or Hub id); with --endpoint, the model name the server serves."
        ),
    ] = None,
    model_revision: Annotated[str | None, typer.Option(help="Hub revision of the checkpoint.")] = None,
    endpoint: EndpointOpt = None,
    name: Annotated[str | None, typer.Option(help="Row name of the model in the report.")] = None,
    baselines: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated baselines: random, majority, human; 'none' for none. "
            "Default: random,majority (+ human when the export carries annotator votes).",
            show_default=False,
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per answer at most.")] = 512,
    temperature: Annotated[float, typer.Option(help="0 = greedy decoding.")] = 0.0,
    image_max_pixels: Annotated[
        int | None,
        typer.Option(
            help="Resize images to at most this many pixels (checkpoint; default: the training bound).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Questions per batch (checkpoint).")] = 4,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda when available).")] = None,
    dtype: Annotated[str, typer.Option(help="Checkpoint dtype: auto, float32, bfloat16, float16.")] = "auto",
    concurrency: Annotated[int, typer.Option(help="Requests in flight (endpoint).")] = 4,
    max_retries: Annotated[
        int, typer.Option(help="Retries per request with exponential backoff (endpoint).")
    ] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds per request attempt (endpoint).")] = 120.0,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline and the bootstrap.")] = 0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for 95% CIs (0: none).")] = 1000,
    limit: Annotated[int | None, typer.Option(help="Score only the first N questions.")] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where the results go.")] = Path(
        "eval"
    ),
    compare: Annotated[
        bool, typer.Option("--compare", help="Put the results.json files given as arguments side by side.")
    ] = False,
) -> None:
    """Score models on a split: exact-match accuracy per dimension and overall, DPA, baselines, a chart.

    Writes results.json, results.md, results.png and predictions.jsonl to --output-dir. Reruns resume: answers already generated are read back from --output-dir/raw/.
    """
    from training.evaluation.evaluate import EvalConfig, run_eval
    from training.evaluation.metrics import ALL, DIMENSIONS
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
    chosen = None
    if baselines is not None:
        chosen = [] if baselines.strip() == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    try:
        config = EvalConfig.model_validate(
            dict(
                dataset=inputs[0],
                split=split,
                revision=revision,
                model=model,
                model_revision=model_revision,
                endpoint=endpoint,
                name=name,
                baselines=chosen,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                image_max_pixels=image_max_pixels,
                batch_size=batch_size,
                device=device,
                dtype=dtype,
                concurrency=concurrency,
                max_retries=max_retries,
                timeout_s=timeout,
                seed=seed,
                bootstrap=bootstrap,
                limit=limit,
                output_dir=output_dir,
            )
        )
    except ValidationError as error:
        raise config_error(error) from None

    with progress() as bar:
        tasks: list[TaskID] = []

        def on_progress(description: str, total: int | None, advance: int) -> None:
            if total is not None:
                tasks.append(bar.add_task(description, total=total, unit="questions"))
            bar.advance(tasks[-1], advance)

        results = run_eval(config, on_progress)

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
