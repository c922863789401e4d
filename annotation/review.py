"""The review loop: a reviewer accepts or rejects annotators' answers, and a rejected answer goes back to its author.

One run of ``medgen annotate review`` (each step resumable; a rerun finds what the last one did):

1. **pull** the annotators' answers (``annotation.pull``), then the reviewers' decisions from their queues;
2. **select** answers no review has seen: every answer of each annotator's first ``first`` tasks, every new
   answer on a task that was sent back, every answer on a source whose annotators disagree (below
   ``min_agreement``, or tied), and a seeded ``share`` of the rest. Gold tasks are checked at once against
   their known answer (``gold_feedback``): a hit is accepted, a miss is rejected by the gold check with the
   expected answer (a second miss on the same task goes to the reviewer instead);
3. **return** every rejected answer to its author: its task is imported again into their queue (at its end)
   with the comment above the images (``$review_note``) and the rejected answer filled in, and the old task,
   with the answer, is deleted from the server (the catalog keeps the answer, ``rejected``, with its version in
   ``annotation_history``); their next answer is pulled like any other and counts instead;
4. **push** the selected answers into the reviewer's queue: a project of their own (their own login, in an
   organization of their own, with the annotator role's limits), one task per answer showing the original,
   the candidates and what the annotator said under each; Accept (1) or Reject (2) with a comment.

Decisions live in the catalog's ``reviews`` table; ``export --require-review`` counts only accepted answers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from annotation.client import Connection, QueueMissing, api_error
from annotation.config import (
    ACCEPT,
    COMMENT,
    DECISION,
    REJECT,
    RETURNED_NOTE,
    REVIEW_NOTE,
    answer_key,
    label_result,
)
from annotation.consensus import iter_consensus, labels_from_json, labels_to_json
from annotation.options import ANNOTATOR, GOLD_CHECK, ReviewConfig
from annotation.prefill import known_labels
from annotation.pull import PullReport, pull, reader
from annotation.push import (
    PushReport,
    _task_payload,
    batch_images,
    ensure_project,
    import_tasks,
    with_accounts,
)
from annotation.tables import (
    REVIEW,
    account_ids,
    active_queues,
    add_reviews,
    count_queue_tasks,
    count_review_tasks,
    decide_reviews,
    make_room_for_tasks,
    mark_returned,
    move_returned_tasks,
    queue_names,
    queue_of,
    record_review_tasks,
    requeue_undecided,
    retire_queue,
    returned_tasks,
    review_pool,
    reviews_by_review_task,
    reviews_to_return,
    unpushed_reviews,
)
from annotation.validation import RawAnnotation
from medgen.errors import MedgenError
from medgen.workspace import Workspace
from medgen.workspace.catalog import now
from schemas import LETTERS, TAXONOMY, CandidateLabel

ACCEPTED, REJECTED = "accepted", "rejected"
REASONS = {
    "gold_miss": "a gold task answered unlike its known answer",
    "gold_miss_again": "a gold task missed again after it came back",
    "gold_hit": "a gold task answered as known",
    "resubmitted": "a new answer on a task that came back",
    "first_tasks": "one of the annotator's first tasks",
    "low_agreement": "the annotators disagree on this source",
    "sample": "drawn at random",
}
"""Why an answer was reviewed, in words (the reviewer's heading and the report)."""
RETURNED_FROM = "returned_from"
"""Task data key of a returned task: the rejected answer it replaces (finds a task a crashed run imported)."""
MODEL_VERSION = "medgen-review"
"""Prediction version of a returned answer on a project that has no pre-fill version of its own."""


@dataclass
class ReviewReport:
    pulled: PullReport | None = None
    decided: Counter[str] = field(default_factory=Counter)  # decisions read from reviewers now
    incomplete: int = 0  # reviewer answers without a decision, or a rejection without a comment
    queued: Counter[str] = field(default_factory=Counter)  # new reviews by reason
    gold: Counter[str] = field(default_factory=Counter)  # decisions the gold check made now
    returned: int = 0  # rejected answers sent back to their authors now
    pushed: int = 0  # review tasks imported now
    missing: list[QueueMissing] = field(default_factory=list)
    logins: list[Any] = field(default_factory=list)


NEEDS_NOTE = {tag.id for d in TAXONOMY.dimensions for tag in d.tags if tag.needs_note}


def tag_words() -> dict[str, str]:
    return {tag.id: tag.label.lower() for d in TAXONOMY.dimensions for tag in d.tags}


def answer_words(label: CandidateLabel, names: dict[str, str] | None = None) -> str:
    """'No defects', or the defects in the tags' own words (with the note of an "Other" tag)."""
    if label.acceptable:
        return "No defects"
    names = names or tag_words()
    said = ", ".join(names.get(tag, tag) for tag in label.defects)
    return f"{said} ({label.rationale})" if label.rationale and NEEDS_NOTE & set(label.defects) else said


def returned_note(row: dict[str, Any]) -> str:
    """What the author reads above their returned task."""
    again = "Your answer is filled in below: change it and submit again."
    if row["reason"] == "gold_miss" and row["expected"]:
        names = tag_words()
        expected = " · ".join(
            f"{letter}: {answer_words(label, names)}"
            for letter, label in zip(LETTERS, labels_from_json(row["expected"]), strict=True)
        )
        return f"Returned by the gold check (a task with a known answer): {row['comment']} Expected: {expected}. {again}"
    return f"Returned by {row['reviewer']}: “{row['comment']}” {again}"


# ---- selection ------------------------------------------------------------------------------------------


def disagreeing_sources(workspace: Workspace, min_agreement: float) -> set[str]:
    """Sources whose annotators' votes (as many as the source needs) tie or agree less than ``min_agreement``."""
    found = set()
    for source_id, consensus, reason, _ in iter_consensus(workspace, min_agreement):
        if consensus is None and not reason.startswith(("no valid", "only ", "no accepted")):
            found.add(source_id)
    return found


def _drawn(seed: int, annotation_id: int, share: float) -> bool:
    digest = hashlib.sha256(f"{seed}/review/{annotation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _gold_decision(
    workspace: Workspace, row: dict[str, Any], truths: dict[str, Any], came_back: set[str]
) -> tuple[str, str | None, str, str | None] | None:
    """(reason, decision, comment, expected) of a gold answer the gold check decides, or None (not gold, or no
    known answer)."""
    source = row["source_id"]
    if source not in truths:
        truths[source] = known_labels(workspace.catalog.candidates(source))
    truth = truths[source]
    if truth is None:
        return None
    given = labels_from_json(row["labels"])
    wrong = [
        letter
        for letter, a, b in zip(LETTERS, given, truth, strict=True)
        if a.acceptable != b.acceptable or a.defects != b.defects
    ]
    if not wrong:
        return "gold_hit", ACCEPTED, "", None
    if "gold_miss" in came_back:
        return "gold_miss_again", None, "", labels_to_json(truth)
    comment = f"your answer differs on {', '.join(wrong)}."
    return "gold_miss", REJECTED, comment, labels_to_json(truth)


def select(workspace: Workspace, config: ReviewConfig, report: ReviewReport) -> None:
    """Record a review row for every answer that needs one (see the module docstring); the gold check's own
    decisions are made here."""
    pool = review_pool(workspace, ANNOTATOR)
    if not pool:
        return
    came_back = returned_tasks(workspace)
    disagree = disagreeing_sources(workspace, config.min_agreement)
    truths: dict[str, Any] = {}
    rows: list[tuple[Any, ...]] = []
    decisions: list[tuple[int, str, str, str]] = []
    for row in pool:
        back = came_back.get(int(row["ls_task_id"]), set())
        decided = (
            _gold_decision(workspace, row, truths, back) if row["is_gold"] and config.gold_feedback else None
        )
        if decided is not None:
            reason, decision, comment, expected = decided
        else:
            decision, comment, expected = None, "", None
            if back - {"gold_miss"}:
                reason = "resubmitted"
            elif row["rank"] <= config.first:
                reason = "first_tasks"
            elif row["source_id"] in disagree:
                reason = "low_agreement"
            elif _drawn(config.seed, int(row["ls_annotation_id"]), config.share):
                reason = "sample"
            else:
                continue
        who = GOLD_CHECK if decision else config.reviewer
        rows.append(
            (row["ls_annotation_id"], row["source_id"], row["annotator"], row["ls_task_id"], reason, who)
            + (None, "", expected, None, now())  # undecided here; the gold check's decisions follow
        )
        if decision:
            decisions.append((int(row["ls_annotation_id"]), decision, comment, who))
        (report.gold if decision else report.queued)[reason] += 1
    add_reviews(workspace, rows, decisions)


# ---- decisions ------------------------------------------------------------------------------------------


def parse_decision(raw: RawAnnotation) -> tuple[str, str] | None:
    """(decision, comment) of a reviewer's answer, or None when it decides nothing usable (no choice, or a
    rejection without a comment)."""
    decision, comment = None, ""
    for item in raw.result:
        value = item.get("value") or {}
        if item.get("from_name") == DECISION and value.get("choices"):
            decision = {ACCEPT: ACCEPTED, REJECT: REJECTED}.get(str(value["choices"][0]).lower())
        elif item.get("from_name") == COMMENT and value.get("text"):
            comment = " ".join(str(text) for text in value["text"]).strip()
    if decision is None or (decision == REJECTED and not comment):
        return None
    return decision, comment


def pull_decisions(workspace: Workspace, connection: Connection, report: ReviewReport) -> None:
    """Read every reviewer's queue; record each review task's latest usable decision by its reviewer (a decision
    changes until the answer has gone back to its author)."""
    ids = {name: user_id for name, _, user_id in account_ids(workspace)}
    source = reader(workspace, connection, [])
    for queue in active_queues(workspace, REVIEW):
        if not source.exists(queue):
            report.missing.append(QueueMissing(queue.annotator, queue.project_id, connection.url))
            continue
        for chunk in source.chunks(queue):
            reviews = reviews_by_review_task(workspace, [raw.task_id for raw in chunk])
            latest: dict[int, RawAnnotation] = {}
            for raw in sorted(chunk, key=lambda r: r.id):
                mine = ids.get(queue.annotator) in (None, raw.completed_by)
                if raw.task_id in reviews and not raw.cancelled and mine:
                    latest[raw.task_id] = raw
            decisions = []
            for task_id, raw in latest.items():
                row, parsed = reviews[task_id], parse_decision(raw)
                if parsed is None:
                    report.incomplete += 1
                elif row["returned_at"] is None and (row["decision"], row["comment"] or "") != parsed:
                    decisions.append((int(row["ls_annotation_id"]), *parsed, queue.annotator))
                    report.decided[parsed[0]] += 1
            decide_reviews(workspace, decisions)


# ---- returning rejected answers --------------------------------------------------------------------------


def _ensure_note_shown(service: Connection, project_id: int) -> str:
    """Give a project made before returns existed the note above its images; returns its pre-fill version ("" when
    it has none: Label Studio then shows every prediction)."""
    project = service.get_json(f"/api/projects/{project_id}/")
    config = str(project.get("label_config") or "")
    if f"${REVIEW_NOTE}" not in config and config.startswith("<View>\n"):
        head, _, rest = config.partition("\n")
        first, _, tail = rest.partition("\n")
        service.patch_json(
            f"/api/projects/{project_id}/", {"label_config": f"{head}\n{first}\n{RETURNED_NOTE}{tail}"}
        )
    return str(project.get("model_version") or "")


def _return_project(workspace: Workspace, connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Send ``rows`` (rejected answers in one author's project) back, in bulk: each task is imported again with
    the note and the rejected answer as its pre-fill, then the old task (with the answer) is deleted from the
    server. Label Studio has no bulk update of task data, and one request per task costs about 0.1 s."""
    annotator, project_id = rows[0]["annotator"], int(rows[0]["ls_project_id"])
    service = connection.queue(annotator)
    version = _ensure_note_shown(service, project_id)
    pending = _adopt_returned(
        workspace, service, project_id, [r for r in rows if r["returned_task_id"] is None]
    )
    for start in range(0, len(pending), 500):
        batch = pending[start : start + 500]
        candidates, source_keys, urls = batch_images(service, workspace, [row["source_id"] for row in batch])
        payload = []
        for row in batch:
            source = row["source_id"]
            task = _task_payload(
                service, workspace, source, candidates[source], None, urls, source_keys[source]
            )
            task["data"] |= {REVIEW_NOTE: returned_note(row), RETURNED_FROM: int(row["ls_annotation_id"])}  # type: ignore[operator]
            result = label_result(labels_from_json(row["labels"]))
            task["predictions"] = [{"model_version": version or MODEL_VERSION, "result": result}]
            payload.append(task)
        task_ids = import_tasks(service, project_id, payload, f"{annotator}'s returned tasks")
        make_room_for_tasks(workspace, task_ids)  # ids of deleted tasks, given again (SQLite)
        moves = [
            (int(r["ls_annotation_id"]), int(r["old_task"]), t) for r, t in zip(batch, task_ids, strict=True)
        ]
        move_returned_tasks(workspace, moves)
        if not version:  # an import with predictions gives a project without a version theirs: undone, so a
            # screener's pre-fills pushed later are shown too
            service.patch_json(f"/api/projects/{project_id}/", {"model_version": ""})
    old = [int(row["old_task"]) for row in rows]
    selected = {"selectedItems": {"all": False, "included": old}}
    service.post_json(f"/api/dm/actions?project={project_id}&id=delete_tasks", selected)


def _adopt_returned(
    workspace: Workspace, service: Connection, project_id: int, pending: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Replacement tasks a crashed run imported but did not record (the server holds more tasks than the catalog):
    recorded now; returns the rows still to import."""
    if not pending or (service.client.projects.get(project_id).task_number or 0) <= count_queue_tasks(
        workspace, project_id
    ):
        return pending
    wanted = {int(row["ls_annotation_id"]): row for row in pending}
    moves = []
    for task in service.client.tasks.list(project=project_id, fields="all", page_size=1000):
        origin = (task.data or {}).get(RETURNED_FROM)
        if origin in wanted:
            moves.append((int(origin), int(wanted.pop(origin)["old_task"]), int(task.id)))
    move_returned_tasks(workspace, moves)
    return list(wanted.values())


def return_rejected(workspace: Workspace, connection: Connection, report: ReviewReport) -> None:
    """Every rejected answer not yet returned goes back to its author, one project at a time (a rerun
    repeats what a crash cut short: each step can be done twice)."""
    by_project: dict[int, list[dict[str, Any]]] = {}
    for row in reviews_to_return(workspace):
        by_project.setdefault(int(row["ls_project_id"]), []).append(row)
    for rows in by_project.values():
        try:
            _return_project(workspace, connection, rows)
        except Exception as error:
            raise api_error(f"returning {rows[0]['annotator']}'s rejected answers", error) from None
        mark_returned(workspace, [int(row["ls_annotation_id"]) for row in rows])
        report.returned += len(rows)


# ---- the reviewer's queue --------------------------------------------------------------------------------


def _review_task(
    connection: Connection,
    workspace: Workspace,
    row: dict[str, Any],
    candidates: Any,
    urls: dict[str, str],
    source_key: str,
) -> dict[str, object]:
    source = row["source_id"]
    task = _task_payload(connection, workspace, source, candidates, None, urls, source_key)
    data: dict[str, object] = task["data"]  # type: ignore[assignment]
    names = tag_words()
    for letter, label in zip(LETTERS, labels_from_json(row["labels"]), strict=True):
        data[answer_key(letter)] = f"{row['annotator']} said: {answer_words(label, names)}"
    data["annotation_id"] = int(row["ls_annotation_id"])
    data["annotator"] = row["annotator"]
    data["heading"] = (
        f"Answer of {row['annotator']} on source {source[:12]}: {REASONS.get(row['reason'], row['reason'])}"
    )
    if row["expected"]:
        expected = " · ".join(
            f"{letter} {answer_words(label, names)}"
            for letter, label in zip(LETTERS, labels_from_json(row["expected"]), strict=True)
        )
        data["heading"] = f"{data['heading']} (known answer: {expected})"
    return {"data": data}


def review_project(workspace: Workspace, connection: Connection, reviewer: str) -> int:
    """The reviewer's project; one gone from the server is retired and made again, with its undecided reviews."""
    try:
        return ensure_project(connection, workspace, REVIEW, reviewer)[0]
    except QueueMissing:
        project_id = queue_of(workspace, REVIEW, reviewer)
        assert project_id is not None
        retire_queue(workspace, project_id)
        requeue_undecided(workspace, project_id)
        return ensure_project(connection, workspace, REVIEW, reviewer)[0]


def push_reviews(
    workspace: Workspace,
    connection: Connection,
    config: ReviewConfig,
    report: ReviewReport,
    on_batch: Callable[[int], None] | None = None,
) -> Connection:
    """Import the reviewer's queued reviews as tasks of their project, ``batch_size`` per request, each batch's
    ids recorded as it lands (a task imported by a run that crashed before recording it is found again)."""
    pending = unpushed_reviews(workspace, config.reviewer)
    if not pending:
        return connection
    made = PushReport()
    connection = with_accounts(workspace, connection, [config.reviewer], REVIEW, made)
    report.logins = made.logins
    project_id = review_project(workspace, connection, config.reviewer)
    queue = connection.queue(config.reviewer)
    pending = _adopt_imported(workspace, queue, project_id, pending)
    for start in range(0, len(pending), config.batch_size):
        batch = pending[start : start + config.batch_size]
        candidates, source_keys, urls = batch_images(queue, workspace, [row["source_id"] for row in batch])
        payload = [
            _review_task(
                queue, workspace, row, candidates[row["source_id"]], urls, source_keys[row["source_id"]]
            )
            for row in batch
        ]
        task_ids = import_tasks(queue, project_id, payload, f"review tasks for {config.reviewer}")
        pairs = [(int(row["ls_annotation_id"]), t) for row, t in zip(batch, task_ids, strict=True)]
        record_review_tasks(workspace, project_id, pairs)
        report.pushed += len(batch)
        if on_batch is not None:
            on_batch(len(batch))
    return connection


def _adopt_imported(
    workspace: Workspace, queue: Connection, project_id: int, pending: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Review tasks already on the server for pending rows (a crash between import and record): recorded now;
    returns the rows still to import. The project's tasks are listed only when it holds more than recorded."""
    try:
        if (queue.client.projects.get(project_id).task_number or 0) <= count_review_tasks(
            workspace, project_id
        ):
            return pending
        tasks = list(queue.client.tasks.list(project=project_id, fields="all", page_size=1000))
    except Exception as error:
        raise api_error("listing review tasks", error) from None
    wanted = {int(row["ls_annotation_id"]) for row in pending}
    found = {}
    for task in tasks:
        annotation_id = (task.data or {}).get("annotation_id")
        if annotation_id in wanted:
            found[int(annotation_id)] = int(task.id)
    known = set(reviews_by_review_task(workspace, list(found.values())))
    pairs = [(a, t) for a, t in found.items() if t not in known]
    record_review_tasks(workspace, project_id, pairs)
    adopted = {a for a, _ in pairs}
    return [row for row in pending if int(row["ls_annotation_id"]) not in adopted]


def review(
    workspace: Workspace,
    connection: Connection,
    config: ReviewConfig,
    on_stage: Callable[[str], None] | None = None,
) -> ReviewReport:
    """One round of the loop (module docstring): pull, decisions, select, return, push."""
    if config.reviewer in queue_names(workspace, ANNOTATOR):
        raise MedgenError(f"{config.reviewer} annotates in this workspace: a reviewer must be someone else")
    report = ReviewReport()
    stage = on_stage or (lambda _: None)
    stage("pulling the annotators' answers")
    report.pulled = pull(workspace, connection)
    stage("reading the reviewers' decisions")
    pull_decisions(workspace, connection, report)
    stage("selecting answers to review")
    select(workspace, config, report)
    stage("returning rejected answers to their authors")
    return_rejected(workspace, connection, report)
    stage(f"pushing {config.reviewer}'s review queue")
    push_reviews(workspace, connection, config, report)
    return report
