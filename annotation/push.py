"""Create the annotation projects and import each complete source as one task, in bulk.

Open-source Label Studio has no overlap assignment or blinding, so medgen makes one project per
annotator and sends every task to exactly ``overlap`` of them, balancing the queues. On the
workspace's own server each annotator also gets a login of their own and an organization holding
only their queue (``annotation.accounts``), so each sees only their own tasks; on another server
(``--url``) the projects share the token's organization and the report says that queues are not blind. Gold tasks (sources whose candidates all carry known injected defects) go to
every annotator and are scored per annotator by ``annotate agreement``.

Idempotent and resumable: the catalog records each task id right after its batch is imported;
before importing, tasks the server has but the catalog lacks (a crash between the two) are
recorded instead of imported again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from annotation.accounts import NewLogin, ensure_accounts
from annotation.client import Connection, QueueMissing, api_error, project_exists
from annotation.config import SOURCE_KEY, label_result, labeling_config, review_labeling_config
from annotation.consensus import ADJUDICATION, labels_from_json
from annotation.guideline import REVIEW_INSTRUCTION, example_urls, instruction_html
from annotation.images import image_urls
from annotation.options import ANNOTATOR, PushConfig
from annotation.prefill import Prefill, Screener, known_labels, resolve, stored
from annotation.prefill import store as store_prefills
from annotation.tables import (
    NO_REGIONS,
    REQUIRED_REGIONS,
    REVIEW,
    add_plan,
    add_queue,
    answers_in,
    count_prefills,
    gold_sources,
    latest_answers,
    make_room_for_tasks,
    not_imported,
    plan_load,
    planned_sources,
    queue_names,
    queue_of,
    queue_regions,
    queue_tasks,
    record_tasks,
    set_queue_regions,
    team_regions,
)
from medgen.errors import MedgenError
from medgen.workspace import Workspace
from schemas import LETTERS, Candidate

ADJUDICATOR = "adjudicator"


@dataclass
class PushReport:
    logins: list[NewLogin] = field(default_factory=list)  # made now: shown once, never logged
    blind: bool = True  # each annotator sees only their own queue
    projects_created: list[str] = field(default_factory=list)
    imported: dict[str, int] = field(default_factory=dict)  # annotator -> tasks imported now
    recovered: int = 0  # tasks found on the server but missing from the catalog
    new_sources: int = 0
    gold_sources: int = 0
    prefilled: int = 0  # new sources with a screener pre-fill (the rest start blank)
    missing: list[QueueMissing] = field(default_factory=list)  # queues gone from the server: repair them


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}/{key}".encode()).hexdigest()


def _workspace_tag(workspace: Workspace) -> str:
    return hashlib.sha256(str(workspace.root).encode()).hexdigest()[:8]


def ensure_project(
    connection: Connection, workspace: Workspace, kind: str, annotator: str, regions: int | None = None
) -> tuple[int, bool]:
    """The catalog's project for (kind, annotator), created on the server when the catalog has none.

    ``connection`` is the workspace's connection; the project lives in ``annotator``'s organization
    when they have an account. ``regions`` (``ls_projects.regions``: 0, 1 optional, 2 required): its config
    marks where defects are; an existing project without the region controls gets them added. None: as the
    queue had it (a repaired queue as the lost one), the adjudicator's as the team's.

    Raises:
        QueueMissing: the catalog's project is gone from the server (`annotate repair` makes it again).
    """
    connection = connection.queue(annotator)
    client = connection.client
    project_id = queue_of(workspace, kind, annotator)
    regions = _regions_wanted(workspace, kind, annotator, regions)
    if project_id is not None:
        if not project_exists(connection, project_id):
            raise QueueMissing(annotator, project_id, connection.url)
        _raise_regions(connection, workspace, kind, annotator, project_id, regions)
        return project_id, False
    tag = _workspace_tag(workspace)
    title = f"medgen {tag} {annotator}"[:50]
    description = f"medgen workspace {workspace.root} ({tag}); {kind} queue of {annotator}"
    config = (
        review_labeling_config()
        if kind == REVIEW
        else labeling_config(votes=kind == ADJUDICATION, regions=bool(regions))
    )
    connection.post_json("/api/projects/validate/", {"label_config": config})  # HTTP 400 on a bad config
    try:
        existing = [p for p in client.projects.list(title=title) if p.title == title]
        project = existing[0] if existing else None  # created by a run that crashed before recording it
        if project is None:
            project = client.projects.create(
                title=title,
                description=description,
                label_config=config,
                expert_instruction=REVIEW_INSTRUCTION
                if kind == REVIEW
                else instruction_html(example_urls(connection, workspace)),
                show_instruction=True,
                show_skip_button=True,
                maximum_annotations=1,
                show_collab_predictions=True,
                # A skipped adjudication comes back to the adjudicator's queue; annotators' skips do not.
                skip_queue="REQUEUE_FOR_ME" if kind in (ADJUDICATION, REVIEW) else "REQUEUE_FOR_OTHERS",
            )
        # Local-files storage lets the server serve this disk's images; a server elsewhere gets uploads.
        reads_disk = connection.document_root is not None
        if reads_disk and not list(client.import_storage.local.list(project=project.id)):
            client.import_storage.local.create(
                project=project.id,
                title="medgen workspace images",
                path=str(workspace.store.root.resolve() / "images"),
                use_blob_urls=False,
                recursive_scan=True,
            )
    except MedgenError:
        raise
    except Exception as error:
        raise api_error(f"creating the {annotator} project", error) from None
    add_queue(workspace, int(project.id), kind, annotator, title, regions)
    return int(project.id), True


def _raise_regions(
    connection: Connection, workspace: Workspace, kind: str, annotator: str, project_id: int, regions: int
) -> None:
    """An existing queue asked for more of regions than it has: its config gets the controls (never taken away:
    answers may use them); required only where nobody has answered yet (earlier answers had no such rule)."""
    if regions <= queue_regions(workspace, kind, annotator):
        return
    if regions == REQUIRED_REGIONS and answers_in(workspace, project_id):
        raise MedgenError(
            f"{annotator}'s queue has answers made without required regions: --require-regions applies to "
            "queues nobody has answered yet (push --regions makes them optional here)"
        )
    add_regions(connection, project_id, votes=kind == ADJUDICATION)
    set_queue_regions(workspace, project_id, regions)


def _regions_wanted(workspace: Workspace, kind: str, annotator: str, regions: int | None) -> int:
    if kind == REVIEW:
        return NO_REGIONS
    if regions is not None:
        return regions
    return team_regions(workspace) if kind == ADJUDICATION else queue_regions(workspace, kind, annotator)


def add_regions(connection: Connection, project_id: int, votes: bool = False) -> bool:
    """Give a queue pushed without ``--regions`` the region controls (answers made so far stay valid: every
    control they used is still there). Returns whether its config changed."""
    project = connection.get_json(f"/api/projects/{project_id}/")
    if "<RectangleLabels" in str(project.get("label_config") or ""):
        return False
    connection.patch_json(
        f"/api/projects/{project_id}/", {"label_config": labeling_config(votes=votes, regions=True)}
    )
    return True


def _image_keys(
    workspace: Workspace, source_id: str, candidates: list[Candidate], source_key: str | None = None
) -> list[str]:
    if source_key is None:
        source = workspace.catalog.source(source_id)
        assert source is not None
        source_key = source.image_key
    return [source_key, *(c.image_key for c in candidates)]


def _task_payload(
    connection: Connection,
    workspace: Workspace,
    source_id: str,
    candidates: list[Candidate],
    prefill: Prefill | None,
    urls: dict[str, str] | None = None,
    source_key: str | None = None,
) -> dict[str, object]:
    keys = _image_keys(workspace, source_id, candidates, source_key)
    urls = urls if urls is not None else image_urls(connection, workspace, keys)
    data: dict[str, object] = {"source_id": source_id, SOURCE_KEY: urls[keys[0]]}
    for letter, key in zip(LETTERS, keys[1:], strict=True):
        data[letter] = urls[key]
    task: dict[str, object] = {"data": data}
    if prefill is not None:
        prediction: dict[str, object] = {
            "model_version": prefill.model_version,
            "result": label_result(prefill.labels),
        }
        if prefill.score is not None:
            prediction["score"] = prefill.score
        task["predictions"] = [prediction]
    return task


def recover_tasks(
    connection: Connection, workspace: Workspace, project_id: int, annotator: str, gold: set[str]
) -> int:
    """Record tasks the server has but the catalog lacks (a crash after import, before the commit)."""
    recorded = len(queue_tasks(workspace, project_id))
    connection = connection.queue(annotator)
    try:
        on_server = connection.client.projects.get(project_id).task_number or 0
    except Exception as error:
        raise api_error("counting tasks", error) from None
    if on_server <= recorded:
        return 0
    known = set(queue_tasks(workspace, project_id))
    sources = {s.id for s in workspace.catalog.sources()}
    try:
        tasks = list(connection.client.tasks.list(project=project_id, fields="all", page_size=500))
    except Exception as error:
        raise api_error("listing tasks", error) from None
    make_room_for_tasks(workspace, [t.id for t in tasks if t.id not in known])  # ids given again (SQLite)
    found = [
        (task.id, project_id, source_id, annotator, int(source_id in gold))
        for task in tasks
        if task.id not in known and (source_id := (task.data or {}).get("source_id")) in sources
    ]
    return record_tasks(workspace, found, recovered=True)


def import_batches(
    connection: Connection,
    workspace: Workspace,
    project_id: int,
    annotator: str,
    sources: list[str],
    gold: set[str],
    batch_size: int = 500,
    prefilled: bool = False,
    on_batch: Callable[[int], None] | None = None,
    extra: dict[str, dict[str, object]] | None = None,
    restore: bool = False,
) -> int:
    """Import ``sources`` as tasks of one project, ``batch_size`` per request; record ids per batch.

    Args:
        prefilled: each task carries its source's stored pre-fill (a Label Studio prediction).
        extra: more task data per source id (the adjudication project shows the annotators' answers).
        restore: each task carries ``annotator``'s latest valid answer already pulled, as an annotation of
            theirs (``annotate repair``: nobody is asked again what they answered).
    """
    queue = connection.queue(annotator)
    account = connection.accounts.get(annotator)
    imported = 0
    for start in range(0, len(sources), batch_size):
        batch = sources[start : start + batch_size]
        candidates, source_keys, urls = batch_images(queue, workspace, batch)
        prefills = stored(workspace, batch) if prefilled else {}
        answers = latest_answers(workspace, annotator, batch) if restore else {}
        payload = [
            _task_payload(queue, workspace, s, candidates[s], prefills.get(s), urls, source_keys[s])
            for s in batch
        ]
        for task in payload:
            source_id = str(task["data"]["source_id"])  # type: ignore[index]
            task["data"].update((extra or {}).get(source_id, {}))  # type: ignore[union-attr]
            if source_id in answers:
                task["annotations"] = [
                    restored_annotation(answers[source_id], account.user_id if account else None)
                ]
        task_ids = import_tasks(queue, project_id, payload, f"tasks for {annotator}")
        make_room_for_tasks(workspace, task_ids)  # ids of deleted tasks, given again (SQLite)
        record_tasks(
            workspace,
            [(tid, project_id, s, annotator, int(s in gold)) for tid, s in zip(task_ids, batch, strict=True)],
        )
        imported += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return imported


def batch_images(
    connection: Connection, workspace: Workspace, sources: list[str]
) -> tuple[dict[str, list[Candidate]], dict[str, str], dict[str, str]]:
    """Candidates, original image keys, and the URLs the server shows every image under, for a batch of
    sources (one query each, not one per task)."""
    candidates = workspace.catalog.candidates_by_source(sources)
    source_keys = {s: source.image_key for s, source in workspace.catalog.sources_by_id(sources).items()}
    unique = dict.fromkeys(sources)
    keys = [key for s in unique for key in _image_keys(workspace, s, candidates[s], source_keys[s])]
    return candidates, source_keys, image_urls(connection, workspace, keys)


def import_tasks(
    queue: Connection, project_id: int, payload: list[dict[str, object]], what: str
) -> list[int]:
    """Import ``payload`` into a project in one request; the new task ids in order."""
    try:
        response = queue.client.projects.import_tasks(project_id, request=payload, return_task_ids=True)
    except Exception as error:
        raise api_error(f"importing {what}", error) from None
    task_ids = list(response.task_ids or [])
    if len(task_ids) != len(payload):
        raise MedgenError(f"Label Studio returned {len(task_ids)} task ids for {len(payload)} {what}: rerun")
    return [int(t) for t in task_ids]


def restored_annotation(answer: dict[str, object], user_id: int | None) -> dict[str, object]:
    """A pulled answer as a Label Studio annotation to import, credited to its author."""
    restored: dict[str, object] = {"result": label_result(labels_from_json(str(answer["labels"])))}
    if answer.get("lead_time") is not None:
        restored["lead_time"] = answer["lead_time"]
    if user_id:
        restored["completed_by"] = user_id
    return restored


def plan(
    workspace: Workspace,
    config: PushConfig,
    prefill_of: Callable[[str, list[Candidate]], Prefill | None] | None = None,
) -> tuple[int, int]:
    """Assign the sources not planned yet to annotators and record it: (new sources, gold among them).

    With ``prefill_of``, each new source's pre-fill is stored now; ``order: uncertainty`` ranks each
    queue by its score, least confident first (gold included, so it does not stand out).
    """
    catalog = workspace.catalog
    planned = planned_sources(workspace)
    new = [source_id for source_id in catalog.complete_sources() if source_id not in planned]
    gold: set[str] = set()
    if config.gold_rate > 0:
        capable = [s for s in new if known_labels(catalog.candidates(s)) is not None]
        if capable:
            count = max(1, round(config.gold_rate * len(new)))
            gold = set(sorted(capable, key=lambda s: _rank(config.seed, s))[:count])
    scores: dict[str, float] = {}
    if prefill_of is not None:
        prefills = {s: p for s in new if (p := prefill_of(s, catalog.candidates(s))) is not None}
        if not config.regions:  # a queue without the region controls shows no pre-filled region
            prefills = {s: p.without_regions() for s, p in prefills.items()}
        missing = [s for s in new if s not in prefills]
        if config.order == "uncertainty":
            unscored = [s for s, p in prefills.items() if p.score is None]
            if unscored or missing:
                raise MedgenError(
                    f"--order uncertainty: {len(unscored) + len(missing)} of {len(new)} new sources have no "
                    "screener score (screen them with --samples 2 or more, or use --order random)"
                )
            scores = {s: p.score for s, p in prefills.items() if p.score is not None}
        store_prefills(workspace, prefills)

    def rank(name: str, source_id: str) -> str:
        tie = _rank(config.seed, f"{name}/{source_id}")
        return f"{scores[source_id]:.6f}/{tie}" if source_id in scores else tie

    planned_load = plan_load(workspace)
    load = {name: planned_load.get(name, 0) for name in config.annotators}
    rows: list[tuple[str, str, int, str]] = []
    order = {name: i for i, name in enumerate(config.annotators)}
    n = len(config.annotators)
    for i, source_id in enumerate(s for s in new if s not in gold):
        chosen = sorted(config.annotators, key=lambda a: (load[a], (order[a] - i) % n))[: config.overlap]
        for name in chosen:
            load[name] += 1
            rows.append((source_id, name, 0, rank(name, source_id)))
    for source_id in sorted(gold):  # gold goes to everyone, shuffled into each queue by rank
        rows.extend((source_id, name, 1, rank(name, source_id)) for name in config.annotators)
    add_plan(workspace, rows)
    return len(new), len(gold)


def pending(workspace: Workspace, annotator: str, project_id: int) -> tuple[list[str], set[str]]:
    """Planned sources of ``annotator`` not yet imported into its project, in queue order; gold among them."""
    rows = not_imported(workspace, annotator, project_id)
    return [source for source, _ in rows], {source for source, gold in rows if gold}


def push(
    workspace: Workspace,
    connection: Connection,
    config: PushConfig,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    screener: Screener | None = None,
) -> PushReport:
    """Create/reuse one project per annotator and import every planned source not imported yet.

    ``screener`` runs a model for ``--predictions model:/endpoint:`` (``annotation.prefill.Screener``).
    """
    report = PushReport()
    if (
        not config.regions and team_regions(workspace) != NO_REGIONS
    ):  # once the team marks regions, it goes on
        config = config.model_copy(update={"regions": True})
    prefill_of = (
        resolve(config.predictions, workspace, screener) if config.predictions else None
    )  # bad spec: fail first
    connection = with_accounts(workspace, connection, config.annotators, ANNOTATOR, report)
    projects: dict[str, int] = {}
    for name in config.annotators:
        try:
            project_id, created = ensure_project(
                connection, workspace, ANNOTATOR, name, config.regions_level()
            )
        except QueueMissing as missing:  # the others go on; its sources are planned, and repair imports them
            report.missing.append(missing)
            continue
        projects[name] = project_id
        if created:
            report.projects_created.append(name)
    gold_all = gold_sources(workspace)
    for name, project_id in projects.items():  # tasks a crashed run imported but did not record
        report.recovered += recover_tasks(connection, workspace, project_id, name, gold_all)
    before = count_prefills(workspace)
    report.new_sources, report.gold_sources = plan(workspace, config, prefill_of)
    report.prefilled = count_prefills(workspace) - before
    queues = {name: pending(workspace, name, project_id) for name, project_id in projects.items()}
    if on_start is not None:
        on_start(sum(len(queue) for queue, _ in queues.values()))
    for name, (queue, gold) in queues.items():
        report.imported[name] = import_batches(
            connection,
            workspace,
            projects[name],
            name,
            queue,
            gold,
            config.batch_size,
            prefilled=config.predictions is not None,
            on_batch=on_batch,
        )
    return report


def with_accounts(
    workspace: Workspace, connection: Connection, names: list[str], kind: str, report: PushReport
) -> Connection:
    """Give each name a login, made now where missing (the workspace's own server only).

    ``connection`` learns the new logins in place, so later calls through it act in each queue's
    organization. A queue pushed before per-annotator logins existed stays in the admin's organization.
    """
    if not connection.own_server:
        report.blind = False
        return connection
    had_queue = queue_names(workspace, kind)
    new = [name for name in names if name not in had_queue or name in connection.accounts]
    wanted = dict.fromkeys(new, kind)
    if kind == ANNOTATOR:  # the adjudicator's login too, in the same run, so agreement need not start Django
        wanted.setdefault(ADJUDICATOR, ADJUDICATION)
    report.logins = ensure_accounts(workspace, wanted)
    report.blind = len(new) == len(names)
    if report.logins:
        from annotation.server import load_credentials

        creds = load_credentials(workspace)
        assert creds is not None
        connection.accounts.update(creds.accounts)
    return connection


def adjudication_project(
    connection: Connection, workspace: Workspace, report: PushReport | None = None
) -> tuple[Connection, int]:
    """The adjudicator's project (with its own login on the workspace's server), created when missing."""
    connection = with_accounts(workspace, connection, [ADJUDICATOR], ADJUDICATION, report or PushReport())
    return connection, ensure_project(connection, workspace, ADJUDICATION, ADJUDICATOR)[0]
