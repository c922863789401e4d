"""The labeling page as an annotator uses it: Chromium logs in through the form, every image loads,
a task is answered with the keyboard alone, and `annotate pull` stores exactly that answer.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; nothing is downloaded). Set
``MEDGEN_SCREENSHOTS=DIR`` to keep the screenshot (the README's comes from here).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotation.client import connect
from annotation.pull import pull
from annotation.push import PushConfig, push
from annotation.server import load_credentials, serve, stop
from medgen.errors import MedgenError
from medgen.generation.config import GenerationConfig
from medgen.generation.generate import generate
from medgen.sources.ingest import add_sources
from medgen.sources.samples import write_samples
from medgen.workspace import Workspace, init_workspace
from tests.annotation.conftest import seed_labelstudio

pytestmark = [pytest.mark.browser, pytest.mark.labelstudio, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def team(ls_root) -> Iterator[tuple[Workspace, str]]:
    """Synthetic candidates of 5 sample products, pushed to ann1 and ann2 on the workspace's own server."""
    ws = init_workspace(ls_root / f"page-{os.urandom(3).hex()}")
    write_samples(ws.root / "photos", 5, seed=0)
    add_sources(ws, [ws.root / "photos"])
    generate(ws, GenerationConfig(backend="synthetic"))
    seed_labelstudio(ws)
    info = serve(ws)
    push(ws, connect(ws), PushConfig(annotators=["ann1", "ann2"], overlap=1))
    yield ws, info.url
    stop(ws)
    ws.close()


def login(browser, url: str, email: str, password: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda address: "/user/login" not in address)
    return page


def open_task(page, url: str, project: int, task: int) -> None:
    page.goto(f"{url}/projects/{project}/data?task={task}")
    page.wait_for_selector("text=Candidate D", timeout=60_000)
    # Every image of the task: the original (once per candidate row) and A-D, decoded by the browser.
    page.wait_for_function(
        """() => {
            const shown = [...document.querySelectorAll('img')].filter(i => i.getBoundingClientRect().width > 200);
            return shown.length >= 8 && shown.every(i => i.complete && i.naturalWidth > 0);
        }""",
        timeout=60_000,
    )


def test_annotator_answers_by_keyboard_and_pull_stores_exactly_that(team, browser, tmp_path) -> None:
    ws, url = team
    creds = load_credentials(ws)
    projects = {r["annotator"]: r["ls_project_id"] for r in ws.catalog.query("SELECT * FROM ls_projects")}
    tasks = [
        r[0]
        for r in ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = 'ann1' ORDER BY ls_task_id")
    ]
    assert len(tasks) >= 3
    page = login(browser, url, creds.accounts["ann1"].email, creds.accounts["ann1"].password)

    open_task(page, url, projects["ann1"], tasks[0])
    data = connect(ws).queue("ann1").client.tasks.get(tasks[0]).data
    sources = {img["src"] for img in page.eval_on_selector_all("img", "els => els.map(e => ({src: e.src}))")}
    for key in ("original", "A", "B", "C", "D"):  # the original photo loads, and each candidate
        assert any(data[key] in src for src in sources), key
    widths = page.eval_on_selector_all(
        "img", "els => els.map(e => e.getBoundingClientRect().width).filter(w => w > 200)"
    )
    assert min(widths) >= 400, widths  # side by side, readable, at 1600 px
    screenshot = tmp_path / "labeling-page.png"
    page.screenshot(path=str(screenshot))
    if os.environ.get("MEDGEN_SCREENSHOTS"):
        shutil.copy(screenshot, Path(os.environ["MEDGEN_SCREENSHOTS"]) / screenshot.name)

    # A clean task: five keys. No mouse.
    for key in ("1", "2", "3", "4", "Control+Enter"):
        page.keyboard.press(key)
    page.wait_for_selector("text=Annotation saved successfully", timeout=30_000)

    # One defect: B floats (B's modifier is Shift, floating is n): still five keys.
    open_task(page, url, projects["ann1"], tasks[1])
    for key in ("1", "Shift+KeyN", "3", "4", "Control+Enter"):
        page.keyboard.press(key)
    page.wait_for_selector("text=Annotation saved successfully", timeout=30_000)

    report = pull(ws, connect(ws))
    assert report.statuses == {"valid": 2}, report.statuses
    stored = {
        r["ls_task_id"]: r for r in ws.catalog.query("SELECT * FROM annotations WHERE annotator = 'ann1'")
    }
    from annotation.consensus import labels_from_json

    clean = labels_from_json(stored[tasks[0]]["labels"])
    assert [(label.acceptable, label.defects) for label in clean] == [(True, ())] * 4
    defect = labels_from_json(stored[tasks[1]]["labels"])
    assert [(label.acceptable, label.defects) for label in defect] == [
        (True, ()),
        (False, ("floating",)),
        (True, ()),
        (True, ()),
    ]
    assert stored[tasks[1]]["completed_by"] == creds.accounts["ann1"].user_id

    # Changing one's mind: the clean task again, D now floats (D's modifier is Alt+Shift); Ctrl+Enter updates.
    open_task(page, url, projects["ann1"], tasks[0])
    for key in ("4", "Alt+Shift+KeyN", "Control+Enter"):
        page.keyboard.press(key)
    page.wait_for_selector("text=Annotation updated successfully", timeout=30_000)
    updated = pull(ws, connect(ws))
    assert updated.updated == 1 and updated.statuses == {"valid": 1}, (updated.updated, updated.statuses)
    changed = labels_from_json(
        ws.catalog.query("SELECT labels FROM annotations WHERE ls_task_id = ?", (tasks[0],))[0][0]
    )
    assert [(label.acceptable, label.defects) for label in changed][3] == (False, ("floating",))

    # Skipping, in the label stream: the next task is skipped, by its button.
    page.goto(f"{url}/projects/{projects['ann1']}/data?labeling=1")
    page.wait_for_selector("text=Candidate D", timeout=60_000)
    page.keyboard.press("Escape")  # the guideline opens first in the stream
    with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as skipped:
        page.click("button:has-text('Skip')")
    assert skipped.value.status == 201
    assert pull(ws, connect(ws)).statuses == {"cancelled": 1}

    # The guideline, generated from the taxonomy, shows its example images (made by the synthetic backend).
    open_task(page, url, projects["ann1"], tasks[0])
    page.click("text=Instructions")
    page.wait_for_selector("text=Screening generated product photos", timeout=30_000)
    page.wait_for_function(
        """() => {
            const examples = [...document.querySelectorAll('img[alt^="example:"]')];
            return examples.length >= 12 && examples.every(i => i.complete && i.naturalWidth > 0);
        }""",
        timeout=30_000,
    )

    # The second annotator, logged in, lists only their own project: not ann1's.
    other = login(browser, url, creds.accounts["ann2"].email, creds.accounts["ann2"].password)
    other.goto(f"{url}/projects/")
    other.wait_for_selector("text=ann2", timeout=30_000)
    titles = {r["title"] for r in ws.catalog.query("SELECT title FROM ls_projects")}
    shown = other.content()
    assert next(t for t in titles if t.endswith("ann2")) in shown
    assert next(t for t in titles if t.endswith("ann1")) not in shown

    # What labeling does not need is refused to the person's browser: the project's settings, for one.
    settings = page.goto(f"{url}/projects/{projects['ann1']}/settings")
    assert settings.status == 403 and "Not allowed" in page.content()


def test_a_rejected_answer_comes_back_to_its_author_on_the_labeling_page(team, browser, tmp_path) -> None:
    """The reviewer rejects with the keyboard and a comment; the author opens the returned task and finds the
    comment above the images and their answer filled in, changes it, and the next review round queues it."""
    from annotation.config import label_result
    from annotation.options import ReviewConfig
    from annotation.review import review
    from schemas import CandidateLabel

    ws, url = team
    creds = load_credentials(ws)
    project = int(ws.catalog.query("SELECT ls_project_id FROM ls_projects WHERE annotator = 'ann1'")[0][0])
    tasks = [
        r[0] for r in ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = 'ann1' ORDER BY 1")
    ]
    ann1 = connect(ws).with_token(creds.accounts["ann1"].token)
    first = ann1.client.annotations.create(
        tasks[0], result=label_result([CandidateLabel(acceptable=True)] * 4)
    )
    config = ReviewConfig(first=1, share=0.0)
    assert review(ws, connect(ws), config).pushed == 1

    creds = load_credentials(ws)
    page = login(browser, url, creds.accounts["reviewer"].email, creds.accounts["reviewer"].password)
    review_project, review_task = ws.catalog.query(
        "SELECT review_project_id, review_task_id FROM reviews WHERE ls_annotation_id = ?", (first.id,)
    )[0]
    page.goto(f"{url}/projects/{review_project}/data?task={review_task}")
    page.wait_for_selector("text=ann1 said: No defects", timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length >= 5",
        timeout=60_000,
    )
    page.screenshot(path=str(tmp_path / "review-page.png"))
    page.keyboard.press("2")  # Reject: the comment box appears, and is required
    comment = "B has a bent cap: tag it as warped"
    page.fill("textarea", comment)
    page.keyboard.press("Shift+Enter")  # adds the comment to the answer (as the box says)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Annotation saved successfully", timeout=30_000)
    assert review(ws, connect(ws), config).returned == 1

    page = login(browser, url, creds.accounts["ann1"].email, creds.accounts["ann1"].password)
    open_task(page, url, project, tasks[1])  # an ordinary task shows no note (and no placeholder)
    assert "review_note" not in page.inner_text("body") and comment not in page.inner_text("body")
    back = ws.catalog.query("SELECT ls_task_id FROM tasks WHERE annotator = 'ann1' ORDER BY 1 DESC LIMIT 1")[
        0
    ][0]
    open_task(page, url, project, back)  # a new task, at the end of ann1's queue
    page.wait_for_selector(f"text={comment}", timeout=30_000)
    checked = page.eval_on_selector_all("input[type=checkbox]", "els => els.filter(e => e.checked).length")
    assert checked == 4, checked  # their answer (No defects x 4) filled in
    screenshot = tmp_path / "returned-task.png"
    page.screenshot(path=str(screenshot))
    if os.environ.get("MEDGEN_SCREENSHOTS"):
        for name in ("returned-task.png", "review-page.png"):
            shutil.copy(tmp_path / name, Path(os.environ["MEDGEN_SCREENSHOTS"]) / name)
    for key in ("2", "Shift+KeyW", "Control+Enter"):  # B: not "No defects", but warped
        page.keyboard.press(key)
    page.wait_for_selector("text=Annotation saved successfully", timeout=30_000)
    again = review(ws, connect(ws), config)
    assert again.queued == {"resubmitted": 1}, again.queued
    from annotation.consensus import labels_from_json

    new = ws.catalog.query(
        "SELECT labels FROM annotations WHERE ls_task_id = ? AND status = 'valid'", (back,)
    )
    assert [label.defects for label in labels_from_json(new[0][0])][1] == ("product_warped",)


def _big_image(page, index: int) -> dict:
    """The ``index``-th large image of the task (original A, A, original B, B, ...), scrolled into view."""
    box = page.evaluate(
        """(index) => {
            const big = [...document.querySelectorAll('img')].filter(i => i.getBoundingClientRect().width > 200);
            big[index].scrollIntoView({block: 'center'});
            return big[index].getBoundingClientRect().toJSON();
        }""",
        index,
    )
    page.wait_for_timeout(300)
    return (
        page.evaluate(
            """(index) => [...document.querySelectorAll('img')]
            .filter(i => i.getBoundingClientRect().width > 200)[index].getBoundingClientRect().toJSON()""",
            index,
        )
        or box
    )


def test_regions_from_the_labeling_page_to_the_export_and_the_evaluation(ls_root, browser, tmp_path) -> None:
    """ann1 answers a task without regions; the queues are pushed again with --regions; ann2 answers the same task
    and drags a box for B's defect: keys and pointer actions counted; pull validates the region, consensus keeps it, the export's
    regions column holds it, and `medgen eval` reports localisation on that export."""
    from annotation.consensus import labels_from_json
    from medgen.export.config import ExportConfig
    from medgen.export.dataset import export_dataset
    from medgen.export.load import load_export
    from training.evaluation.config import EvalConfig
    from training.evaluation.evaluate import run_eval
    from training.tiny import build_tiny_vlm

    ws = init_workspace(ls_root / f"regions-{os.urandom(3).hex()}")
    write_samples(ws.root / "photos", 3, seed=0)
    add_sources(ws, [ws.root / "photos"])
    generate(ws, GenerationConfig(backend="synthetic"))
    seed_labelstudio(ws)
    info = serve(ws)
    try:
        url = info.url
        push(ws, connect(ws), PushConfig(annotators=["ann1", "ann2"], overlap=2))
        creds = load_credentials(ws)
        rows = ws.catalog.query("SELECT annotator, ls_project_id FROM ls_projects")
        projects = {r["annotator"]: r["ls_project_id"] for r in rows}
        task_of = {
            r["annotator"]: r["ls_task_id"]
            for r in ws.catalog.query(
                "SELECT annotator, ls_task_id, source_id FROM tasks ORDER BY source_id, annotator"
            )
        }
        source = ws.catalog.query("SELECT source_id FROM tasks WHERE ls_task_id = ?", (task_of["ann1"],))[0][
            0
        ]
        assert (
            ws.catalog.query("SELECT source_id FROM tasks WHERE ls_task_id = ?", (task_of["ann2"],))[0][0]
            == source
        )

        effort: dict[str, Counter[str]] = {"without regions": Counter(), "with regions": Counter()}
        answer = ("1", "Shift+KeyN", "3", "4", "Control+Enter")  # B floats; submitted

        def press(page, keys: tuple[str, ...], count: Counter[str]) -> None:
            for key in keys:
                page.keyboard.press(key)
                count["keys"] += 1

        page = login(browser, url, creds.accounts["ann1"].email, creds.accounts["ann1"].password)
        open_task(page, url, projects["ann1"], task_of["ann1"])
        assert page.locator(".lsf-label", has_text="Floating").count() == 0  # no region controls here
        press(page, answer, effort["without regions"])
        page.wait_for_selector("text=Annotation saved successfully", timeout=30_000)
        # Then the team's queues get the region controls (queues pushed before): their configs are updated.
        push(ws, connect(ws), PushConfig(annotators=["ann1", "ann2"], overlap=2, regions=True))

        count = effort["with regions"]
        page = login(browser, url, creds.accounts["ann2"].email, creds.accounts["ann2"].password)
        open_task(page, url, projects["ann2"], task_of["ann2"])
        press(page, answer[:-1], count)
        page.locator(".lsf-label", has_text="Floating").nth(1).click()  # B's "Floating" region label
        count["pointer"] += 1
        image = _big_image(page, 3)  # candidate B
        start = (image["x"] + 0.2 * image["width"], image["y"] + 0.25 * image["height"])
        end = (image["x"] + 0.6 * image["width"], image["y"] + 0.75 * image["height"])
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=8)
        page.mouse.up()
        count["pointer"] += 1  # one drag
        page.wait_for_timeout(500)
        screenshot = tmp_path / "labeling-regions.png"
        page.screenshot(path=str(screenshot))
        if os.environ.get("MEDGEN_SCREENSHOTS"):
            shutil.copy(screenshot, Path(os.environ["MEDGEN_SCREENSHOTS"]) / screenshot.name)
        press(page, answer[-1:], count)
        page.wait_for_selector("text=Annotation saved successfully", timeout=30_000)
        print("annotator effort per task:", {k: dict(v) for k, v in effort.items()})
        assert effort["without regions"] == Counter(keys=5) and effort["with regions"] == Counter(
            keys=5, pointer=2
        )

        report = pull(ws, connect(ws))
        assert report.statuses == {"valid": 2}, report.statuses
        stored = {
            r["annotator"]: labels_from_json(r["labels"])
            for r in ws.catalog.query("SELECT annotator, labels FROM annotations")
        }
        assert stored["ann1"][1].regions == ()
        (region,) = stored["ann2"][1].regions
        assert region.tag == "floating"
        assert region.box == pytest.approx((0.2, 0.25, 0.6, 0.75), abs=0.02)

        export = export_dataset(ws, ExportConfig(version="v1", train=0.0, validation=0.0, test=1.0))
        rows = list(load_export(export.path, "test"))
        placement = next(r for r in rows if r["source_id"] == source and r["answer"] == "B")
        (merged,) = placement["regions"][1]
        assert merged["tag"] == "floating" and (merged["agreed"], merged["of"]) == (1, 1)
        assert merged["annotators"] == ["ann2"]
        assert merged["box"] == pytest.approx(list(region.box), abs=1e-3)

        model = build_tiny_vlm(tmp_path / "model")
        results = run_eval(
            EvalConfig(
                dataset=str(export.path),
                model=str(model),
                output_dir=tmp_path / "eval",
                max_new_tokens=8,
                bootstrap=0,
                answer_boxes=True,
            )
        )
        assert results.models[0].scores["placement_layout"].located_n == 1
        assert "Localisation" in (tmp_path / "eval" / "results.md").read_text()

        # The queues' setting is kept (a repaired queue gets it again), the adjudicator's page follows the team,
        # and a queue people have answered is not made to require regions after the fact.
        levels = {
            r["annotator"]: r["regions"]
            for r in ws.catalog.query("SELECT annotator, regions FROM ls_projects")
        }
        assert levels == {"ann1": 1, "ann2": 1}
        from annotation.push import adjudication_project

        adjudication, project_id = adjudication_project(connect(ws), ws)
        assert (
            "<RectangleLabels"
            in adjudication.queue("adjudicator").get_json(f"/api/projects/{project_id}/")["label_config"]
        )
        with pytest.raises(MedgenError, match="answers made without required regions"):
            push(ws, connect(ws), PushConfig(annotators=["ann1", "ann2"], overlap=2, require_regions=True))

        # A pre-fill from a screener that gave boxes arrives on the page with its region (a new source).
        write_samples(ws.root / "more", 1, seed=9)
        add_sources(ws, [ws.root / "more"])
        generate(ws, GenerationConfig(backend="synthetic"))
        new_source = next(
            s
            for s in ws.catalog.candidate_sources()
            if s not in {r["source_id"] for r in ws.catalog.query("SELECT source_id FROM tasks")}
        )
        screened = tmp_path / "screen.jsonl"
        screened.write_text(_screen_records(ws, new_source))
        push(
            ws,
            connect(ws),
            PushConfig(annotators=["ann1", "ann2"], overlap=2, predictions=f"screen:{screened}"),
        )
        task = ws.catalog.query(
            "SELECT ls_task_id FROM tasks WHERE annotator = 'ann2' AND source_id = ?", (new_source,)
        )[0][0]
        page = login(browser, url, creds.accounts["ann2"].email, creds.accounts["ann2"].password)
        open_task(page, url, projects["ann2"], task)
        page.wait_for_selector(".lsf-outliner-item, [class*=outliner] >> text=Floating", timeout=30_000)
        checked = page.eval_on_selector_all(
            "input[type=checkbox]", "els => els.filter(e => e.checked).length"
        )
        assert checked == 4, checked  # A, C, D "No defects" and B "Floating", as the screener proposed
    finally:
        stop(ws)
        ws.close()


def _screen_records(ws: Workspace, source: str) -> str:
    """A `medgen screen` output for one source: B floats, with the model's box; the others publishable."""
    import json

    lines = []
    for candidate in ws.catalog.candidates(source):
        bad = candidate.letter == "B"
        lines.append(
            json.dumps(
                {
                    "candidate": candidate.id,
                    "source": source,
                    "letter": candidate.letter,
                    "verdict": "reject" if bad else "publishable",
                    "confidence": 0.9,
                    "defective_dimensions": ["placement_layout"] if bad else [],
                    "reasons": {"placement_layout": "Floating above the table."} if bad else {},
                    "defects": {},
                    "boxes": {"placement_layout": [[0.3, 0.2, 0.7, 0.6]]} if bad else {},
                }
            )
        )
    return "\n".join(lines) + "\n"
