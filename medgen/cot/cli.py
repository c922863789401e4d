"""`medgen cot`: a teacher model explains each question's known answer; validated rationales are kept."""

from __future__ import annotations

from typing import Any

from medgen.console import WorkspaceOpt, build_config, config_options, console, progress
from medgen.cot.config import CotConfig


@config_options(CotConfig)
def cot_command(workspace: WorkspaceOpt = None, options: dict[str, Any] | None = None) -> None:
    """Answer-driven chain of thought: a teacher explains each known answer; validated rationales are stored."""
    from medgen.cot.cot import teacher_rationales
    from medgen.workspace import open_workspace

    config = build_config(CotConfig, options or {})
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
