"""The annotation quality report: its numbers on a catalog whose truth is known, and the page in Chromium.

``MEDGEN_SCREENSHOTS=DIR`` keeps the page's screenshot (the README's comes from here).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from annotation.report import report_numbers, wilson
from annotation.tables import add_queue, begin_pull, record_tasks, save_annotations
from benchmarks.annotation_report import ANNOTATORS, fill_catalog
from medgen.cli import app
from medgen.workspace import init_workspace
from tests.annotation.test_labeling_page import CHROMIUM, FLAGS


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson(81, 100)
    assert (round(low, 3), round(high, 3)) == (
        0.722,
        0.875,
    )  # statsmodels proportion_confint(81, 100, method="wilson")
    assert wilson(0, 0) == (None, None)


def test_numbers_follow_the_simulated_truth(tmp_path) -> None:
    ws = init_workspace(tmp_path / "ws")
    fill_catalog(ws, 400, seed=1)
    numbers = report_numbers(ws)
    people = numbers["annotators"]
    assert set(people) == set(ANNOTATORS) and numbers["totals"]["answers"] == 1200
    # The cleanest person (ann1: 5 % errors, against 12 % for ann2 and 8 % then 16 % for ann3) agrees most.
    rates = {name: p["agreement_with_consensus"]["acceptable"]["rate"] for name, p in people.items()}
    assert rates["ann1"] > max(rates["ann2"], rates["ann3"]), rates
    gold = {name: p["gold"] for name, p in people.items()}
    assert all(g["ci_low"] <= g["accuracy"] <= g["ci_high"] and g["tasks"] >= 19 for g in gold.values()), gold
    assert gold["ann1"]["accuracy"] > gold["ann2"]["accuracy"]
    # ann3 doubles their errors in the later half: alpha falls from the first windows to the last.
    drift = numbers["dimensions"]["acceptable"]["alpha_over_time"]
    assert len(drift) == 8 and sum(w["sources"] for w in drift) == numbers["totals"]["paired_sources"]
    assert drift[0]["alpha"] > drift[-1]["alpha"], drift
    pairs = numbers["dimensions"]["acceptable"]["pairwise"]
    assert pairs["annotators"] == sorted(ANNOTATORS) and pairs["agreement"][0][0] is None  # no self-pair
    assert pairs["agreement"][0][2] == pairs["agreement"][2][0]  # symmetric
    confused = numbers["dimensions"]["appearance_deformation"]["confused"]
    assert confused and all("no defect" in c["tags"] or len(c["tags"]) == 2 for c in confused)
    # Time per task: ann1 is the quickest by construction (log-normal medians e^3.0, e^3.2, e^3.4 s).
    medians = {name: p["lead_time_s"]["median"] for name, p in people.items()}
    assert medians["ann1"] < medians["ann2"] < medians["ann3"], medians


def test_alpha_is_perfect_when_everyone_agrees_and_pairwise_counts_candidates(tmp_path) -> None:
    """Two people answering every source the same: alpha 1 (where defined), agreement 100 % on 4 x sources."""
    from annotation.consensus import labels_to_json
    from schemas import CandidateLabel
    from tests.annotation.conftest import add_sources

    ws = init_workspace(tmp_path / "ws")
    sources = add_sources(ws, 6, known=False)
    for project, name in ((1, "a"), (2, "b")):
        add_queue(ws, project, "annotator", name, name)
    record_tasks(
        ws, [(10 * p + i, p, s, n, 0) for p, n in ((1, "a"), (2, "b")) for i, s in enumerate(sources)]
    )
    begin_pull(ws)
    bad = CandidateLabel(defects=("floating",), acceptable=False)
    rows = []
    for p, name in ((1, "a"), (2, "b")):
        for i, source in enumerate(sources):
            labels = [CandidateLabel(acceptable=True)] * 3 + [
                bad if i % 2 else CandidateLabel(acceptable=True)
            ]
            rows.append(
                (
                    100 * p + i,
                    10 * p + i,
                    p,
                    name,
                    source,
                    "valid",
                    "[]",
                    labels_to_json(labels),
                    12.0,
                    f"2026-11-0{i + 1}T00:00:00",
                    None,
                    "now",
                    None,
                )
            )
    save_annotations(ws, rows, [], [], [])
    numbers = report_numbers(ws)
    placement = numbers["dimensions"]["placement_layout"]
    assert placement["alpha"] == pytest.approx(1.0) and placement["units"] == 24
    assert placement["pairwise"]["agreement"][0][1] == 1.0 and placement["pairwise"]["n"][0][1] == 24
    assert placement["confused"] == []
    assert numbers["annotators"]["a"]["agreement_with_consensus"]["placement_layout"] == {
        "rate": 1.0,
        "n": 24,
    }


@pytest.mark.browser
def test_the_page_renders_every_section_in_chromium(tmp_path, runner) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ws = init_workspace(tmp_path / "ws")
    fill_catalog(ws, 300)
    ws.close()
    result = runner.invoke(app, ["annotate", "report", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    page_path = ws.root / "reports" / "annotation" / "index.html"
    numbers = json.loads(page_path.with_name("report.json").read_text())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_path.as_uri())
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])")
        assert len(images) == 3 + 5 and all(done and width > 100 for done, width, _ in images), images
        text = page.inner_text("body")
        for heading in (
            "Annotators",
            "Agreement with the consensus",
            "Dimensions",
            "Agreement between each pair of annotators",
        ):
            assert heading in text
        for name, person in numbers["annotators"].items():
            assert text.count(name) >= 2, name  # the people table and the consensus table (and the plots)
            assert f"{name}\t{person['answers']}\t{person['valid']}\t{person['skipped']}\t" in text
        screenshot = tmp_path / "annotation-report.png"
        page.set_viewport_size({"width": 1280, "height": 1500})  # the tables and the first plots
        page.screenshot(path=str(screenshot))
        browser.close()
    if os.environ.get("MEDGEN_SCREENSHOTS"):
        shutil.copy(screenshot, Path(os.environ["MEDGEN_SCREENSHOTS"]) / screenshot.name)


def test_gold_tasks_score_where_annotators_put_the_defects(tmp_path) -> None:
    """On gold tasks the synthetic backend's regions are the truth: a region of a tag the person got right counts
    as found at IoU 0.5 (a point within reach); the share they marked at all is reported beside it."""
    from annotation.consensus import labels_to_json
    from annotation.prefill import known_labels
    from schemas.regions import Region
    from tests.annotation.conftest import add_sources

    ws = init_workspace(tmp_path / "ws")
    sources = add_sources(ws, 4, regions=True)
    for project, name in ((1, "good"), (2, "off"), (3, "none")):
        add_queue(ws, project, "annotator", name, name)
    record_tasks(
        ws,
        [
            (10 * p + i, p, s, ["good", "off", "none"][p - 1], 1)
            for p in (1, 2, 3)
            for i, s in enumerate(sources)
        ],
    )
    begin_pull(ws)
    rows = []
    for p, name in ((1, "good"), (2, "off"), (3, "none")):
        for i, source in enumerate(sources):
            truth = known_labels(ws.catalog.candidates(source))
            if name == "off":  # the right tags, boxes elsewhere (points far away)
                truth = tuple(
                    label.model_copy(
                        update={
                            "regions": tuple(
                                Region(
                                    tag=r.tag,
                                    box=(0.0, 0.0, 0.05, 0.05) if not r.is_point else (0.0, 0.0, 0.0, 0.0),
                                )
                                for r in label.regions
                            )
                        }
                    )
                    for label in truth
                )
            elif name == "none":
                truth = tuple(label.model_copy(update={"regions": ()}) for label in truth)
            rows.append(
                (
                    100 * p + i,
                    10 * p + i,
                    p,
                    name,
                    source,
                    "valid",
                    "[]",
                    labels_to_json(truth),
                    10.0,
                    "2026-11-01T00:00:00",
                    None,
                    "now",
                    None,
                )
            )
    save_annotations(ws, rows, [], [], [])
    people = report_numbers(ws)["annotators"]
    truths = sum(len(label.regions) for s in sources for label in known_labels(ws.catalog.candidates(s)))
    assert truths > 0
    assert people["good"]["gold_regions"] | {"ci": None} == {
        "hit_rate": 1.0,
        "ci": None,
        "marked": truths,
        "n": truths,
    }
    assert (
        people["off"]["gold_regions"]["hit_rate"] == 0.0 and people["off"]["gold_regions"]["marked"] == truths
    )
    assert (
        people["none"]["gold_regions"]["hit_rate"] is None and people["none"]["gold_regions"]["marked"] == 0
    )
    # Consensus: the same tags from all three; two places per region (good's and off's), one person each of two.
    from annotation.agreement import compute_agreement, write_report

    report = compute_agreement(ws, min_annotators=3)
    c = report.consensus
    assert (c.regions, c.shared_regions) == (2 * truths, 2 * truths)
    assert c.region_agreement_sum / c.shared_regions == pytest.approx(0.5)
    written = json.loads(write_report(ws, report).read_text())["regions"]
    assert written == {
        "consensus_regions": 2 * truths,
        "marked_by_several": 2 * truths,
        "mean_share_agreeing": 0.5,
    }
