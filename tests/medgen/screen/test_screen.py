"""`medgen screen`: verdicts, confidence from samples, reasons, outputs, resume, inputs and bad input."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medgen.cli import app
from medgen.screen.screen import ScreenConfig, groups_from_files, groups_from_workspace, screen
from schemas.taxonomy import TAXONOMY
from tests.training.eval_data import API_KEY
from tests.training.evaluation.conftest import ChatServer


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, colour in enumerate(["red", "green", "blue", "yellow", "purple", "orange"]):
        path = folder / f"image_{i}.png"
        Image.new("RGB", (64, 48), colour).save(path)
        paths.append(path)
    return paths


def _question(body: dict) -> str:
    return " ".join(part.get("text", "") for part in body["messages"][0]["content"] if part["type"] == "text")


def test_confidence_is_the_agreement_of_the_samples_and_reasons_are_the_models_words(
    chat_server: ChatServer, photos, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    seen: dict[str, int] = {}

    def reply(body: dict) -> tuple[int, str]:
        question = _question(body)
        count = seen[question] = seen.get(question, 0) + 1
        if "acceptable to publish" in question:
            # Two samples of three leave B out of the acceptable images: B is rejected with confidence 2/3.
            letters = "A,C,D" if count % 3 else "A,B,C,D"
            return (
                200,
                f"<think>Image B: the blister floats above the table.\nImage D: fine.</think><answer>{letters}</answer>",
            )
        if TAXONOMY.dimension("placement_layout").description in question:
            return (
                200,
                "<think>Image A: fine.\nImage B: it hovers with no contact shadow.</think><answer>B</answer>",
            )
        return 200, "<think>Nothing stands out except D.</think><answer>D</answer>"

    chat_server.reply = reply
    source, *candidates = photos[:5]
    config = ScreenConfig(
        model="judge", endpoint=chat_server.url, samples=3, temperature=0.8, output_dir=tmp_path / "out"
    )
    results, paths = screen(groups_from_files(source, candidates), config)
    assert len(chat_server.requests) == 5 * 3  # five questions, three samples each
    first = chat_server.requests[0]
    assert sum(part["type"] == "image_url" for part in first["messages"][0]["content"]) == 5
    assert first["temperature"] == 0.8
    by_letter = {r.letter: r for r in results}
    b = by_letter["B"]
    assert b.verdict == "reject" and b.publishable is False
    assert b.p_publishable == pytest.approx(1 / 3, abs=1e-4) and b.confidence == pytest.approx(
        2 / 3, abs=1e-4
    )
    assert b.defective_dimensions == ["placement_layout"]
    assert b.reasons["placement_layout"] == "it hovers with no contact shadow."
    assert b.reasons["overall"] == "the blister floats above the table."
    a = by_letter["A"]
    assert a.verdict == "publishable" and a.confidence == 1.0 and a.defective_dimensions == []
    d = by_letter["D"]
    assert set(d.defective_dimensions) == {
        "appearance_deformation",
        "lighting_shadow",
        "extension_rationality",
    }
    assert (
        d.reasons["lighting_shadow"] == "Nothing stands out except D."
    )  # no "Image D:" line: the whole reasoning
    # D is called publishable while the model flags three of its dimensions: the verdict says so.
    assert d.verdict == "publishable" and d.conflicts and "yet the model flags" in d.conflicts[0]
    assert b.conflicts == []  # rejected, as the checks (and the model's placement answer) agree
    # The candidates are plain colours unlike the source: the checks find no product in A, which the model
    # called publishable: said, not hidden.
    assert all(r.checks is not None for r in results)  # the automatic checks ran beside the model
    assert [c for c in a.conflicts if "model flags" in c] == []
    assert any("the checks found appearance_other" in c for c in a.conflicts)

    records = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    assert [r["letter"] for r in records] == ["A", "B", "C", "D"]
    rows = list(csv.DictReader(paths["csv"].open()))
    assert rows[1]["verdict"] == "reject" and rows[1]["p_placement_layout"] == "1.0000"
    sheet = paths["contact sheet"].read_text()
    assert sheet.count('class="badge bad">B: reject 67%') == 1 and "hovers with no contact shadow" in sheet
    assert sheet.count('class="badge warn">D: publishable?') == 1 and "yet the model flags" in sheet
    assert records[3]["conflicts"] and rows[3]["conflicts"].startswith("publishable, yet the model flags")
    for src in re.findall(r'src="([^"]+)"', sheet):
        assert (paths["contact sheet"].parent / src).is_file()
    assert API_KEY not in "".join(
        p.read_text() for p in paths["jsonl"].parent.rglob("*") if p.is_file() and p.suffix != ".jpg"
    )

    # Resumed: every answer is in the output folder already, so nothing is asked again.
    chat_server.requests.clear()
    again, _ = screen(groups_from_files(source, candidates), config)
    assert chat_server.requests == [] and again == results


def test_fewer_than_four_candidates_are_padded_and_more_are_grouped_by_four(
    chat_server, photos, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    chat_server.reply = lambda body: (200, "<think>Image A: ok.</think><answer>A,B,C,D</answer>")
    source, *candidates = photos  # five candidates: a group of four, then one padded to four
    groups = groups_from_files(source, candidates)
    assert [len(g.candidates) for g in groups] == [4, 1]
    results, _ = screen(groups, ScreenConfig(model="judge", endpoint=chat_server.url, output_dir=tmp_path))
    assert len(results) == 5 and [r.letter for r in results] == ["A", "B", "C", "D", "A"]
    assert all(r.verdict == "publishable" for r in results)


def test_a_tiny_checkpoint_screens_files_from_the_command_line(photos, tmp_path, tmp_path_factory):
    from training.tiny import build_tiny_vlm

    model = build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "model")
    out = tmp_path / "screen"
    args = ["screen", *map(str, photos[:3]), "-m", str(model), "--max-new-tokens", "8", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 candidates:" in result.output and "contact_sheet.html" in result.output
    records = [json.loads(line) for line in (out / "screen.jsonl").read_text().splitlines()]
    # A random-weight model writes no readable answer: every verdict is unknown, nothing is made up.
    assert [r["verdict"] for r in records] == ["unknown", "unknown"] and records[0]["unparsed"] == 5


def test_the_workspace_gives_its_unannotated_candidates(tmp_path):
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.sources.ingest import add_sources
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace

    workspace = init_workspace(tmp_path / "ws")
    add_sources(workspace, write_samples(tmp_path / "photos", 3, seed=0))
    generate(workspace, GenerationConfig(backend="synthetic"))
    groups = groups_from_workspace(workspace)
    assert len(groups) == 3 and all(len(g.candidates) == 4 for g in groups)
    annotated = groups[0].source_id
    with workspace.catalog.transaction() as db:
        db.execute(
            "INSERT INTO annotations (ls_annotation_id, ls_task_id, ls_project_id, annotator, source_id, status, "
            "pulled_at) VALUES (1, 1, 1, 'ann1', ?, 'valid', '2026-12-01')",
            (annotated,),
        )
    assert [g.source_id for g in groups_from_workspace(workspace)] == [g.source_id for g in groups[1:]]
    assert len(groups_from_workspace(workspace, limit=1)) == 1
    workspace.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "no such image file"),
        (lambda d: (d / "notes.png").write_text("not an image") and d / "notes.png", "cannot read"),
    ],
)
def test_bad_files_are_one_line(photos, tmp_path, make, message):
    bad = make(tmp_path)
    result = CliRunner().invoke(app, ["screen", str(photos[0]), str(bad), "-m", "unused"])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_sampling_settings_are_checked(photos, tmp_path):
    result = CliRunner().invoke(
        app,
        ["screen", *map(str, photos[:2]), "-m", "x", "-k", "3", "--temperature", "0", "-o", str(tmp_path)],
    )
    assert result.exit_code == 1 and "needs --temperature above 0" in result.output
    result = CliRunner().invoke(app, ["screen", *map(str, photos[:2])])
    assert result.exit_code == 1 and "--model" in result.output


def test_boxes_of_a_model_asked_for_them_are_drawn_and_carried_into_pre_fills(
    chat_server: ChatServer, photos, tmp_path, monkeypatch
):
    """A screener trained with answer_boxes: the dimension questions ask for boxes, the verdict keeps them, the
    contact sheet draws them over the candidate, and a pre-fill from the screen carries them as regions."""
    from annotation.config import label_result
    from annotation.prefill import screen_prefills
    from schemas.prompts import BOX_INSTRUCTIONS

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    asked: list[str] = []

    def reply(body: dict) -> tuple[int, str]:
        question = _question(body)
        asked.append(question)
        if "acceptable to publish" in question:
            return 200, "<think>Image B: it floats.</think><answer>A,C,D</answer>"
        if TAXONOMY.dimension("placement_layout").description in question:
            return (
                200,
                "<think>Image B: floating above the table.</think><answer>B</answer><boxes>B (200,250,600,750)</boxes>",
            )
        if TAXONOMY.dimension("lighting_shadow").description in question:
            return (
                200,
                "<think>Image B: shadow missing under it.</think><answer>B</answer><boxes>B (400,900)</boxes>",
            )
        return 200, "<think>Image A: fine.</think><answer>A</answer>"

    chat_server.reply = reply
    source, *candidates = photos[:5]
    config = ScreenConfig(
        model="judge", endpoint=chat_server.url, output_dir=tmp_path / "out", answer_boxes=True
    )
    results, paths = screen(groups_from_files(source, candidates), config)
    assert sum(q.endswith(BOX_INSTRUCTIONS) for q in asked) == 4  # the four dimensions, not publishable
    b = next(r for r in results if r.letter == "B")
    assert b.boxes == {
        "placement_layout": [[0.2, 0.25, 0.6, 0.75]],
        "lighting_shadow": [[0.4, 0.9, 0.4, 0.9]],
    }
    assert next(r for r in results if r.letter == "A").boxes == {}  # flagged without a box: none
    sheet = paths["contact sheet"].read_text()
    assert 'class="box" style="left:20.00%;top:25.00%;width:40.00%;height:50.00%;"' in sheet
    assert 'class="box point" style="left:40.00%;top:90.00%;"' in sheet

    # Pre-fills from this screen: B's tags with the model's boxes as regions (the four candidates as one task).
    records = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    source_id = records[0]["source"]
    prefill = screen_prefills(paths["jsonl"])[source_id]
    regions = {r.tag: r.box for r in prefill.labels[1].regions}
    assert regions == {"floating": (0.2, 0.25, 0.6, 0.75), "shadow_missing": (0.4, 0.9, 0.4, 0.9)}
    assert {item["type"] for item in label_result(prefill.labels)} >= {"rectanglelabels", "keypointlabels"}
    assert prefill.without_regions().labels[1].regions == ()


def test_the_contact_sheet_draws_the_boxes_in_chromium(tmp_path, photos) -> None:
    """The boxes sit over the candidate's thumbnail where the model put them (looked at in a real browser)."""
    import shutil

    from medgen.screen.screen import CandidateVerdict, contact_sheet

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    groups = groups_from_files(photos[0], photos[1:3])
    verdicts = [
        CandidateVerdict(
            candidate=cid,
            source=groups[0].source_id,
            letter=letter,
            path=str(path),
            verdict="reject",
            publishable=False,
            confidence=None,
            p_publishable=0.0,
            defects={},
            defective_dimensions=["placement_layout"],
            reasons={"placement_layout": "floats"},
            samples=1,
            unparsed=0,
            boxes={"placement_layout": [[0.25, 0.5, 0.75, 1.0]]} if letter == "A" else {},
        )
        for (cid, path), letter in zip(groups[0].candidates, "AB", strict=False)
    ]
    config = ScreenConfig(model="judge", endpoint="http://unused", output_dir=tmp_path)
    page_path = tmp_path / "contact_sheet.html"
    page_path.write_text(contact_sheet(verdicts, groups, config))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 700})
        page.goto(page_path.as_uri())
        image = page.eval_on_selector(
            'figure.candidate img[alt="A"]', "e => e.getBoundingClientRect().toJSON()"
        )
        box = page.eval_on_selector(".box", "e => e.getBoundingClientRect().toJSON()")
        page.screenshot(path=str(tmp_path / "contact-sheet-boxes.png"))
        browser.close()
    assert box["x"] == pytest.approx(image["x"] + 0.25 * image["width"], abs=1.5)
    assert box["y"] == pytest.approx(image["y"] + 0.5 * image["height"], abs=1.5)
    assert box["width"] == pytest.approx(0.5 * image["width"], abs=1.5)
    assert box["height"] == pytest.approx(0.5 * image["height"], abs=1.5)
