"""The labeling page as an annotator uses it: Chromium logs in through the form, every image loads,
a task is answered with the keyboard alone, and `annotate pull` stores exactly that answer.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; nothing is downloaded). Set
``MEDGEN_SCREENSHOTS=DIR`` to keep the screenshot (the README's comes from here).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotation.client import connect
from annotation.pull import pull
from annotation.push import PushConfig, push
from annotation.server import load_credentials, serve, stop
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
