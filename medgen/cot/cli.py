"""`medgen cot`: a teacher model explains each question's known answer; validated rationales are kept."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from medgen.console import EndpointOpt, WorkspaceOpt, console, progress
from medgen.errors import config_error


def cot_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Model name the --endpoint serves, or a local checkpoint folder / Hub id."
        ),
    ] = None,
    endpoint: EndpointOpt = None,
    labels: Annotated[
        str,
        typer.Option(
            help="Gold answers from 'consensus' (annotations) or 'injected' (synthetic ground truth)."
        ),
    ] = "consensus",
    min_words: Annotated[int, typer.Option(help="Shortest rationale kept, in words.")] = 20,
    max_words: Annotated[int, typer.Option(help="Longest rationale kept, in words.")] = 250,
    limit: Annotated[
        int | None, typer.Option(help="Ask about at most this many questions in this run.")
    ] = None,
    retry_rejected: Annotated[
        bool, typer.Option("--retry-rejected", help="Ask again about questions whose rationale was rejected.")
    ] = False,
    temperature: Annotated[float, typer.Option(help="Teacher sampling temperature (0: greedy).")] = 0.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per rationale at most.")] = 768,
    concurrency: Annotated[int, typer.Option(help="Requests in flight (endpoint).")] = 4,
    batch_size: Annotated[int, typer.Option(help="Questions per batch (checkpoint).")] = 4,
    device: Annotated[
        str | None, typer.Option(help="torch device (checkpoint; default: cuda if present).")
    ] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Answer-driven chain of thought: a teacher explains each known answer; validated rationales are stored."""
    from medgen.cot.cot import CotConfig, teacher_rationales
    from medgen.errors import MedgenError
    from medgen.workspace import open_workspace

    if not model:
        raise MedgenError("give the teacher: --endpoint URL --model NAME, or --model CHECKPOINT")
    try:
        config = CotConfig(
            model=model,
            endpoint=endpoint,
            labels=labels,  # type: ignore[arg-type]
            min_words=min_words,
            max_words=max_words,
            limit=limit,
            retry_rejected=retry_rejected,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            concurrency=concurrency,
            batch_size=batch_size,
            device=device,
        )
    except ValidationError as error:
        raise config_error(error, options=True) from None
    with open_workspace(workspace) as ws, progress() as bar:
        task = bar.add_task("asking the teacher", total=None, unit="questions")
        report = teacher_rationales(
            ws,
            config,
            on_start=lambda total: bar.update(task, total=total),
            on_done=lambda n: bar.advance(task, n),
        )
    rejected = sum(report.rejected.values())
    console.print(
        f"{report.questions} questions: asked {report.asked} now ({report.accepted} accepted, {rejected} rejected), "
        f"{report.skipped} answered before"
    )
    for reason, count in report.rejected.most_common():
        console.print(f"  rejected, {reason}: {count}")
    console.print(f"report: {report.report_path}", highlight=False)
    if report.accepted or report.skipped:
        console.print("next: medgen export --rationale teacher --version VERSION")
