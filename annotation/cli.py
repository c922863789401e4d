"""`medgen annotate ...`: serve, push, status, pull, agreement. Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from annotation.options import ConsensusConfig, PushConfig, ReviewConfig
from medgen.console import (
    App,
    WorkspaceOpt,
    build_config,
    config_options,
    console,
    progress,
)

if TYPE_CHECKING:
    from annotation.accounts import NewLogin
    from annotation.client import Connection, QueueMissing
    from medgen.workspace import Workspace

annotate_app = App(
    help="Annotate candidates in Label Studio: serve, users, push, status, pull, agreement, review, report, repair."
)
users_app = App(help="Annotators' Label Studio logins: list, add, reset-password.")
annotate_app.add_typer(users_app, name="users")

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Use this Label Studio instead of the workspace's own (token from $LABEL_STUDIO_API_KEY; "
        "$LABEL_STUDIO_URL is used too, and named in the output).",
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


def _connect(ws: Workspace, url: str | None, document_root: Path | None) -> Connection:
    """Connect, and say which server when it was not the workspace's own (never a silent $LABEL_STUDIO_URL)."""
    from annotation.client import connect

    connection = connect(ws, url, document_root)
    if not connection.own_server:
        console.print(
            f"Label Studio at {connection.url} (from {connection.origin}); medgen did not start it, so its roles "
            "cannot be enforced there: every member of an organization can change its projects",
            highlight=False,
        )
    return connection


def _show_missing(missing: list[QueueMissing]) -> None:
    """One line per queue whose project is gone from the server; the command went on with the others."""
    for queue in missing:
        console.print(f"[yellow]{queue}[/]", highlight=False)


def _show_logins(logins: list[NewLogin], ws: Workspace) -> None:
    """New logins, printed once (the file keeps them, 0600); never written to a log."""
    if not logins:
        return
    table = Table(title="new Label Studio logins (shown once; also in labelstudio/credentials.json, 0600)")
    for column in ("name", "login e-mail", "password"):
        table.add_column(column)
    for login in logins:
        table.add_row(login.name, login.email, login.password)
    console.print(table)
    console.print(
        f"give each person their own line; `medgen annotate users list -w {ws.root}` shows them again",
        highlight=False,
    )


@annotate_app.command()
def serve(
    workspace: WorkspaceOpt = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: a free one).")] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on: 127.0.0.1 (this machine only), or 0.0.0.0 for a team.")
    ] = "127.0.0.1",
    public_url: Annotated[
        str | None,
        typer.Option(
            help="URL annotators open, when a reverse proxy (HTTPS) stands in front.", show_default=False
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            envvar="MEDGEN_LS_DATABASE",
            help="postgresql://USER:PASSWORD@HOST:PORT/NAME for a team (default: SQLite in the workspace).",
            show_default=False,
        ),
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the workspace's server.")] = False,
) -> None:
    """Start the workspace's Label Studio (or stop it with --stop)."""
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
            info = start_server(ws, port=port, host=host, public_url=public_url, database=database)
        creds = load_credentials(ws)
        assert creds is not None
        where = info.public_url or info.url
        console.print(
            f"Label Studio running at [bold]{where}[/] (pid {info.pid}, listening on {info.host}:{info.port}, "
            f"database {info.database})",
            highlight=False,
        )
        console.print(
            f"admin login {creds.username}; password and API token ({mask(creds.token)}) are in "
            f"{ws.labelstudio_dir / 'credentials.json'} (readable by you only)",
            highlight=False,
        )
        for note in info.notes:
            console.print(f"[yellow]note[/]: {note}", highlight=False)
        console.print(f"next: medgen annotate push --annotators ann1,ann2 -w {ws.root}")


@users_app.command("list")
def users_list(workspace: WorkspaceOpt = None) -> None:
    """Annotators' logins (no passwords: they are in labelstudio/credentials.json)."""
    from annotation.accounts import list_accounts
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        accounts = list_accounts(ws)
    table = Table(title=f"{len(accounts)} Label Studio logins")
    for column in ("name", "queue", "login e-mail", "user id", "organization"):
        table.add_column(column)
    for account in accounts:
        table.add_row(account.name, account.kind, account.email, str(account.user_id), str(account.org_id))
    console.print(table)


@users_app.command("add")
def users_add(
    names: Annotated[list[str], typer.Argument(help="Annotator names (letters, digits, '.', '_', '-').")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Make a login and an organization of their own for each name (before `push` gives them a queue)."""
    from annotation.accounts import ensure_accounts
    from annotation.options import ANNOTATOR
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        logins = ensure_accounts(ws, dict.fromkeys(names, ANNOTATOR))
        if not logins:
            console.print("every name already has a login")
        _show_logins(logins, ws)


@users_app.command("reset-password")
def users_reset_password(
    name: Annotated[str, typer.Argument(help="Annotator name.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Give NAME a new generated password (shown once); the old one stops working."""
    from annotation.accounts import reset_password
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        _show_logins([reset_password(ws, name)], ws)


@annotate_app.command()
@config_options(PushConfig)
def push(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    url: UrlOpt = None,
    document_root: RootOpt = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Create the projects and import new sources as tasks, in bulk."""
    from annotation.push import push as push_tasks
    from medgen.workspace import open_workspace

    config = build_config(PushConfig, options or {})
    with open_workspace(workspace) as ws:
        connection = _connect(ws, url, document_root)
        with progress() as bar:
            task = bar.add_task("importing tasks", total=None, unit="tasks")
            report = push_tasks(
                ws,
                connection,
                config,
                screener=getattr(ctx.obj, "screener", None),  # the `medgen` command hands it down
                on_start=lambda total: bar.update(task, total=total),
                on_batch=lambda n: bar.advance(task, n),
            )
        _show_logins(report.logins, ws)
    _show_missing(report.missing)
    if not report.blind:
        console.print(
            "[yellow]queues are not blind[/]: on this server the annotators share an organization and can open "
            "each other's projects; per-annotator logins and organizations need the workspace's own server "
            "(`medgen annotate serve`)",
            highlight=False,
        )
    if report.projects_created:
        console.print(f"created projects for: {', '.join(report.projects_created)}")
    if report.recovered:
        console.print(f"recorded {report.recovered} task(s) an interrupted push had imported")
    imported = ", ".join(f"{name} {n}" for name, n in report.imported.items())
    console.print(
        f"new sources {report.new_sources} (gold {report.gold_sources}); tasks imported: {imported}"
    )
    if config.predictions:
        console.print(
            f"pre-filled {report.prefilled} of {report.new_sources} new sources from {config.predictions} "
            f"(queue order: {config.order}); the rest start blank",
            highlight=False,
        )


@annotate_app.command()
def status(workspace: WorkspaceOpt = None, url: UrlOpt = None, document_root: RootOpt = None) -> None:
    """Progress per project: done, skipped, remaining, mean seconds per task."""
    from annotation.pull import project_status
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        rows = project_status(ws, _connect(ws, url, document_root))
    table = Table(title="annotation progress")
    for column in ("project", "annotator", "tasks", "done", "skipped", "remaining", "mean s/task"):
        table.add_column(column, justify="right" if column not in ("annotator",) else "left")
    for row in rows:
        if row.missing:
            table.add_row(str(row.project_id), row.annotator, str(row.tasks), "[yellow]gone[/]", "", "", "")
            continue
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
    gone = [row.annotator for row in rows if row.missing]
    if gone:
        console.print(
            f"[yellow]gone from the server[/]: the queue(s) of {', '.join(gone)}; `medgen annotate repair` makes "
            "them again from the catalog, with the answers already pulled",
            highlight=False,
        )


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
    from annotation.pull import pull as pull_annotations
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        connection = None if export_file else _connect(ws, url, document_root)
        with progress() as bar:
            task = bar.add_task("pulling", total=None, unit="annotations")
            report = pull_annotations(
                ws,
                connection,
                export_file,
                on_project=lambda name: bar.update(task, description=f"pulling {name}"),
                on_start=lambda total: bar.update(task, total=total),
                on_progress=lambda n: bar.advance(task, n),
            )
    for note in report.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    _show_missing(report.missing)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())) or "none"
    console.print(
        f"annotations: new {report.new}, updated {report.updated}, unchanged {report.unchanged}, "
        f"deleted in Label Studio {report.deleted}"
    )
    if report.lost:
        console.print(
            f"[yellow]{report.lost} annotation(s) gone with an older backup of Label Studio's database[/]: kept in "
            "the catalog; `medgen annotate repair` imports them again",
            highlight=False,
        )
    console.print(f"statuses of new/updated: {statuses}")
    if report.unknown_tasks:
        console.print(
            f"[yellow]{len(report.unknown_tasks)} annotation(s) on tasks this workspace did not push[/]"
        )
    console.print(f"not-used annotations and reasons: {report.report_path}", highlight=False)


@annotate_app.command()
@config_options(ConsensusConfig)
def agreement(
    workspace: WorkspaceOpt = None,
    url: UrlOpt = None,
    document_root: RootOpt = None,
    adjudicate: Annotated[
        bool,
        typer.Option(
            "--adjudicate/--no-adjudicate", help="Push unresolved items to the adjudication project."
        ),
    ] = True,
    options: dict[str, Any] | None = None,
) -> None:
    """Krippendorff's alpha, gold accuracy per annotator, consensus; unresolved items to adjudication."""
    from annotation.agreement import agreement as compute
    from medgen.workspace import open_workspace

    consensus = build_config(ConsensusConfig, options or {})
    with open_workspace(workspace) as ws:
        connection = _connect(ws, url, document_root) if adjudicate else None
        report = compute(ws, connection, consensus.min_agreement, consensus.min_annotators)
        _show_logins(report.logins, ws)
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
    if c.regions:
        share = f"{c.region_agreement_sum / c.shared_regions:.0%}" if c.shared_regions else "–"
        console.print(
            f"regions: {c.regions} in the consensus; {c.shared_regions} marked by several people, of whom "
            f"{share} agreed on the place (IoU >= 0.5) on average"
        )
    if report.prefill_edits:
        edits = Table(title="what annotators did with the screener's pre-fill (share of candidate decisions)")
        for column in ("dimension", "kept", "changed", "added", "removed", "n"):
            edits.add_column(column, justify="left" if column == "dimension" else "right")
        for dimension, rates in report.prefill_edits.items():
            edits.add_row(
                dimension,
                *(f"{rates[k]:.0%}" for k in ("kept", "changed", "added", "removed")),
                str(int(rates["n"])),
            )
        console.print(edits)
        console.print(
            "a high 'kept' on tasks where the pre-fill was wrong is anchoring: compare with gold accuracy",
            highlight=False,
        )
    c = report.consensus
    console.print(
        f"consensus {c.resolved} source(s) ({c.adjudicated} adjudicated), "
        f"unresolved {len(c.unresolved)}, sent to adjudication now {report.adjudication_pushed}, "
        f"requeued {report.adjudication_requeued}; report: {report.report_path}",
        highlight=False,
    )


@annotate_app.command()
def repair(workspace: WorkspaceOpt = None, url: UrlOpt = None, document_root: RootOpt = None) -> None:
    """Make again every queue whose project is gone from the server, with its tasks, pre-fills and the
    answers already pulled (nothing in the catalog is deleted)."""
    from annotation.repair import repair as repair_queues
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws:
        connection = _connect(ws, url, document_root)
        with console.status("checking every queue"):
            report = repair_queues(ws, connection)
    if report.logins:
        console.print(
            f"made again on the server: the login or organization of {', '.join(report.logins)} "
            "(same password and token as in labelstudio/credentials.json)",
            highlight=False,
        )
    for queue in report.repaired:
        lost = f"project {queue.lost_project} was gone" if queue.lost_project else "no project was recorded"
        console.print(
            f"{queue.annotator}'s queue: {lost}; made project {queue.project} with {queue.tasks} task(s), "
            f"{queue.answers} of them with the answer already pulled from {queue.annotator}",
            highlight=False,
        )
    if not report.repaired:
        console.print(f"every queue is on the server ({len(report.intact)}): nothing to repair")


@annotate_app.command()
@config_options(ReviewConfig)
def review(
    workspace: WorkspaceOpt = None,
    url: UrlOpt = None,
    document_root: RootOpt = None,
    options: dict[str, Any] | None = None,
) -> None:
    """One round of review: pull answers and decisions, send rejected answers back to their authors with the
    comment, queue new answers for the reviewer (first tasks, disagreements, a share; gold checked at once)."""
    from annotation.review import REASONS
    from annotation.review import review as run_review
    from medgen.workspace import open_workspace

    config = build_config(ReviewConfig, options or {})
    with open_workspace(workspace) as ws:
        connection = _connect(ws, url, document_root)
        with console.status("reviewing") as shown:
            report = run_review(ws, connection, config, on_stage=lambda text: shown.update(text))
        _show_logins(report.logins, ws)
    _show_missing(report.missing)
    decided = ", ".join(f"{n} {d}" for d, n in sorted(report.decided.items())) or "none"
    console.print(f"decisions read now: {decided}", highlight=False)
    if report.incomplete:
        console.print(
            f"[yellow]{report.incomplete} review(s) decide nothing usable[/] (no choice, or a rejection "
            "without a comment): they wait for the reviewer",
            highlight=False,
        )
    for reason, n in sorted(report.gold.items()):
        console.print(f"gold check: {n} {REASONS[reason]}", highlight=False)
    console.print(f"returned to their authors with the comment: {report.returned}", highlight=False)
    queued = ", ".join(f"{REASONS[r]} {n}" for r, n in sorted(report.queued.items())) or "nothing new"
    console.print(
        f"queued for {config.reviewer}: {queued}; review tasks pushed: {report.pushed}", highlight=False
    )


@annotate_app.command()
def report(
    workspace: WorkspaceOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder of the report (default: <workspace>/reports/annotation)."
        ),
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(help="Consensus agreement the per-person comparison uses (default: consensus's own)."),
    ] = None,
) -> None:
    """The annotation quality report, from what was pulled: per annotator (answers, skips, time per task, gold
    accuracy, agreement with the consensus, review acceptance, pre-fills kept) and per dimension (alpha overall
    and over time, agreement between each pair, confused tags); index.html with its plots, and report.json."""
    from annotation.report_page import write_report
    from medgen.workspace import open_workspace

    with open_workspace(workspace) as ws, console.status("writing the annotation report"):
        path = write_report(ws, output, min_agreement)
    console.print(f"report: {path} (numbers: {path.with_name('report.json')})", highlight=False)
