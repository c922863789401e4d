"""Simulated annotators for the demo and the tests: answers from known labels, with human-like noise.

Every simulated annotation is created through the Label Studio API like a human's, with the
annotator's own login when they have one (so it is credited to them), and is marked as simulated in
each candidate's rationale (``[simulated]``), so it can never pass for real work.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from annotation.client import Connection, api_error
from annotation.config import label_result
from annotation.consensus import SIMULATED_MARK
from annotation.ls_database import DatabaseUnavailable, fetch_project_db
from annotation.noise import Noise, noisy_label
from annotation.options import ANNOTATOR
from annotation.pull import fetch_project, local_database
from annotation.push import known_labels
from annotation.tables import NO_REGIONS, active_queues, queue_regions, queue_task_sources
from medgen.workspace import Workspace

MARK = SIMULATED_MARK
WORKERS = 4
"""Requests in flight at once, as several people annotating at the same time (the server's workers are busy)."""
CHUNK = 256
"""Answers made and sent at a time."""
RETRIES = 3
"""Tries again after an answer of 500/502/503 (0.5, 1, 2 s later) before giving up."""


def _annotated(workspace: Workspace, client: Connection, name: str, project_id: int) -> set[int]:
    """Tasks of one project that already hold an annotation (read from the local database when possible)."""
    try:
        database = local_database(workspace, client)
        if database is not None:
            return {raw.task_id for raw in fetch_project_db(database, project_id)}
    except DatabaseUnavailable:
        pass
    return {raw.task_id for raw in fetch_project(client.queue(name), project_id)}


def simulate_annotators(
    workspace: Workspace, client: Connection, noise: float = 0.1, seed: int = 0
) -> dict[str, int]:
    """Annotate every not-yet-annotated task of each annotator project. Returns annotations made per annotator.

    Tasks are read from a catalog cursor and answered CHUNK at a time: memory does not grow with the project.

    Args:
        noise: overall error rate; split into missed tags, extra tags, flipped verdicts and skips.
        seed: the same seed gives the same answers (whatever order the requests finish in).
    """
    rates = Noise(missed_tag=noise / 2, extra_tag=noise / 4, flipped=noise / 4, skip=noise / 5)
    made: dict[str, int] = {}
    for queue in active_queues(workspace, ANNOTATOR):
        name, project_id = queue.annotator, queue.project_id
        done = _annotated(workspace, client, name, project_id)
        account = client.accounts.get(name)
        annotator = (
            client.with_token(account.token) if account else client
        )  # as that person, when they have a login

        def create(
            answer: tuple[int, dict[str, object]], as_whom: Connection = annotator, who: str = name
        ) -> None:
            send(as_whom, answer[0], answer[1], who)

        made[name] = 0
        regions = queue_regions(workspace, ANNOTATOR, name) != NO_REGIONS  # drawn where the page has them
        answers = _answers(workspace, name, project_id, done, rates, seed, regions)
        with ThreadPoolExecutor(WORKERS) as pool:
            while chunk := list(itertools.islice(answers, CHUNK)):
                list(pool.map(create, chunk))
                made[name] += len(chunk)
    return made


def send(client: Connection, task_id: int, answer: dict[str, object], who: str) -> None:
    """Create one annotation; an answer of 500/502/503 is tried again (0.5, 1, 2 s later), as a browser would.

    Label Studio on SQLite answers 500 when a write waits past its lock timeout ("database is locked"
    with several annotators at once; its advice is PostgreSQL for teams).
    """
    for attempt in range(RETRIES + 1):
        try:
            client.client.annotations.create(task_id, **answer)  # type: ignore[arg-type]
            return
        except Exception as error:
            if getattr(error, "status_code", None) not in (500, 502, 503) or attempt == RETRIES:
                raise api_error(f"creating a simulated annotation for {who}", error) from None
            time.sleep(0.5 * 2**attempt)


def _answers(
    workspace: Workspace,
    name: str,
    project_id: int,
    done: set[int],
    rates: Noise,
    seed: int,
    regions: bool = False,
) -> Iterator[tuple[int, dict[str, object]]]:
    """(task id, annotation) for each task of the project not annotated yet whose labels are known."""
    for task_id, source_id in queue_task_sources(workspace, project_id):
        if task_id in done:
            continue
        truth = known_labels(workspace.catalog.candidates(source_id))
        if truth is None:
            continue  # no known labels to simulate from
        rng = random.Random(f"{seed}/{name}/{source_id}")
        skipped = rng.random() < rates.skip
        labels = [noisy_label(label, rates, rng) for label in truth]
        if not regions:
            labels = [label.model_copy(update={"regions": ()}) for label in labels]
        answer = {
            "result": [] if skipped else label_result(labels),
            "was_cancelled": skipped,
            "lead_time": round(rng.uniform(15, 90), 1),
        }
        yield task_id, answer
