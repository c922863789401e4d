"""`medgen annotate ...`: serve, push, status, pull, agreement. Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medgen.console import App, WorkspaceOpt, console, progress

annotate_app = App(help="Annotate candidates in Label Studio: serve, push, status, pull, agreement.")

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="LABEL_STUDIO_URL",
        help="Use this Label Studio instead of the workspace's own (token from $LABEL_STUDIO_API_KEY).",
        show_default=False,
    ),
]
RootOpt = Annotated[
    Path | None,
    typer.Option(
        help="With --url: the folder that server's local-files document root points at.", show_default=False
    ),
]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@annotate_app.command()
def serve(
    workspace: WorkspaceOpt = None,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the workspace's server.")] = False,
) -> None:
    """Start a local Label Studio for this workspace (or stop it with --stop)."""
    from annotation.server import load_credentials, mask
    from annotation.server import serve as start_server
    from annotation.server import stop as stop_server
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        if stop:
            console.print(
                "stopped Label Studio"
                if stop_server(ws)
                else "no Label Studio was running for this workspace"
            )
            return
        with console.status("starting Label Studio (the first start migrates its database, ~30 s)"):
            info = start_server(ws, port=port)
        creds = load_credentials(ws)
        assert creds is not None
        console.print(f"Label Studio running at [bold]{info.url}[/] (pid {info.pid})")
        console.print(
            f"log in as {creds.username}; password and API token ({mask(creds.token)}) are in "
            f"{ws.labelstudio_dir / 'credentials.json'} (readable by you only)",
            highlight=False,
        )
        console.print(f"next: medgen annotate push -w {ws.root}")


@annotate_app.command()
def push(
    workspace: WorkspaceOpt = None,
    url: UrlOpt = None,
    document_root: RootOpt = None,
    annotators: Annotated[
        str, typer.Option(help="Comma-separated annotator names: one project each.")
    ] = "annotator",
    overlap: Annotated[int, typer.Option(help="How many annotators see each task.")] = 1,
    gold_rate: Annotated[
        float, typer.Option(help="Share of new sources with known labels sent to everyone as gold.")
    ] = 0.0,
    predictions: Annotated[
        bool, typer.Option("--predictions", help="Pre-annotate from known labels (not on gold).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Tasks per import request.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the gold draw and queue order.")] = 0,
) -> None:
    """Create the projects and import new sources as tasks, in bulk."""
    from pydantic import ValidationError

    from annotation.client import connect
    from annotation.push import PushConfig
    from annotation.push import push as push_tasks
    from medgen.errors import config_error
    from medgen.workspace import open_workspace

    try:
        config = PushConfig(
            annotators=annotators.split(","),
            overlap=overlap,
            gold_rate=gold_rate,
            predictions=predictions,
            batch_size=batch_size,
            seed=seed,
        )
    except ValidationError as error:
        raise config_error(error, options=True) from None
    with open_workspace(workspace) as ws:
        connection = connect(ws, url, document_root)
        with progress() as bar:
            task = bar.add_task("importing tasks", total=None, unit="tasks")
            report = push_tasks(
                ws,
                connection,
                config,
                on_start=lambda total: bar.update(task, total=total),
                on_batch=lambda n: bar.advance(task, n),
            )
    if report.projects_created:
        console.print(f"created projects for: {', '.join(report.projects_created)}")
    if report.recovered:
        console.print(f"recorded {report.recovered} task(s) an interrupted push had imported")
    imported = ", ".join(f"{name} {n}" for name, n in report.imported.items())
    console.print(
        f"new sources {report.new_sources} (gold {report.gold_sources}); tasks imported: {imported}"
    )


@annotate_app.command()
def status(workspace: WorkspaceOpt = None, url: UrlOpt = None, document_root: RootOpt = None) -> None:
    """Progress per project: done, skipped, remaining, mean seconds per task."""
    from annotation.client import connect
    from annotation.pull import project_status
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        rows = project_status(ws, connect(ws, url, document_root))
    table = Table(title="annotation progress")
    for column in ("project", "annotator", "tasks", "done", "skipped", "remaining", "mean s/task"):
        table.add_column(column, justify="right" if column not in ("annotator",) else "left")
    for row in rows:
        table.add_row(
            str(row.project_id),
            row.annotator,
            str(row.tasks),
            str(row.done),
            str(row.skipped),
            str(row.remaining),
            _fmt(row.mean_seconds, 1),
        )
    console.print(table)


@annotate_app.command()
def pull(
    workspace: WorkspaceOpt = None,
    url: UrlOpt = None,
    document_root: RootOpt = None,
    export_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--from-file", help="Read a Label Studio export (JSON, JSON_MIN, API list) instead of the server."
        ),
    ] = None,
) -> None:
    """Fetch annotations, validate them, store them (idempotent); report the ones not used."""
    from annotation.client import connect
    from annotation.pull import pull as pull_annotations
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        connection = None if export_file else connect(ws, url, document_root)
        report = pull_annotations(ws, connection, export_file)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())) or "none"
    console.print(
        f"annotations: new {report.new}, updated {report.updated}, unchanged {report.unchanged}, "
        f"deleted in Label Studio {report.deleted}"
    )
    console.print(f"statuses of new/updated: {statuses}")
    if report.unknown_tasks:
        console.print(
            f"[yellow]{len(report.unknown_tasks)} annotation(s) on tasks this workspace did not push[/]"
        )
    console.print(f"not-used annotations and reasons: {report.report_path}", highlight=False)


@annotate_app.command()
def agreement(
    workspace: WorkspaceOpt = None,
    url: UrlOpt = None,
    document_root: RootOpt = None,
    min_agreement: Annotated[
        float, typer.Option(help="Items below this agreement go to adjudication.")
    ] = 0.5,
    adjudicate: Annotated[
        bool,
        typer.Option(
            "--adjudicate/--no-adjudicate", help="Push unresolved items to the adjudication project."
        ),
    ] = True,
) -> None:
    """Krippendorff's alpha, gold accuracy per annotator, consensus; unresolved items to adjudication."""
    from annotation.agreement import agreement as compute
    from annotation.client import connect
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        connection = connect(ws, url, document_root) if adjudicate else None
        report = compute(ws, connection, min_agreement)
    table = Table(title="Krippendorff's alpha (nominal)")
    table.add_column("dimension")
    table.add_column("alpha", justify="right")
    for part, value in report.alpha.items():
        table.add_row(part, _fmt(value))
    console.print(table)
    if report.gold:
        gold = Table(title="gold accuracy")
        for column in ("annotator", "gold tasks", "candidate exact", "acceptable"):
            gold.add_column(column)
        for name, score in report.gold.items():
            gold.add_row(
                name,
                str(score["gold_tasks"]),
                _fmt(score["candidate_accuracy"]),
                _fmt(score["acceptable_accuracy"]),
            )
        console.print(gold)
    c = report.consensus
    console.print(
        f"consensus {len(c.items)} source(s) ({sum(i.adjudicated for i in c.items.values())} adjudicated), "
        f"unresolved {len(c.unresolved)}, sent to adjudication now {report.adjudication_pushed}; report: {report.report_path}",
        highlight=False,
    )
