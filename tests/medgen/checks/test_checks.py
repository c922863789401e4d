"""`medgen check`: each check catches its own perturbation and leaves untouched candidates alone; outputs,
resume, bad input; `generate --drop-failing` keeps broken candidates from annotators without deleting them."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.checks_evalset import TAGS, draw_original, make_item
from medgen.checks import tables
from medgen.checks.check import check_files, check_group, check_workspace, files_group
from medgen.checks.config import CheckConfig
from medgen.checks.findings import JUDGED_TAGS, NOT_JUDGED, findings, scale_change
from medgen.checks.measure import measure, prepare_reference
from medgen.cli import app
from schemas.taxonomy import TAXONOMY
from tests.medgen.checks.conftest import add_perturbed_sources

FAST = CheckConfig(ocr=False)


def _tags(item) -> set[str]:
    reference = prepare_reference(item.original, item.mask, FAST)
    values = measure(reference, item.candidate, FAST).values
    values["scale_change"] = scale_change(values["scale"], 1.0)
    return {f.tag for f in findings(values, FAST)}


@pytest.mark.parametrize("tag", TAGS)
def test_each_check_finds_its_own_perturbation_and_nothing_else(tag):
    # Strong, plain cases (severity drawn in [0.3, 1]; these seeds give mid to high ones): the tag is found,
    # and no other tag is.
    hits = 0
    for seed in range(3):
        item = make_item(np.random.default_rng([7, seed]), tag)
        found = _tags(item)
        hits += tag in found
        assert found <= {tag}, f"{tag} (severity {item.severity:.2f}) also flagged {found - {tag}}"
    assert hits >= 2, f"{tag} found in {hits} of 3"


def test_untouched_candidates_have_no_findings():
    for seed in range(8):
        item = make_item(np.random.default_rng([11, seed]), None)
        assert _tags(item) == set(), f"untouched candidate {seed} ({item.style})"


def test_every_taxonomy_tag_is_judged_or_listed_as_not_judged():
    every = {tag.id for dimension in TAXONOMY.dimensions for tag in dimension.tags}
    judged = set(JUDGED_TAGS)
    assert judged <= every and set(NOT_JUDGED) <= every and not judged & set(NOT_JUDGED)
    others = {t for t in every if t.endswith("_other")} - judged  # free-text "Other" tags: a person's words
    assert judged | set(NOT_JUDGED) | others == every


def _files(tmp_path: Path, tags: list[str | None], seed: int = 3) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(seed)
    original = draw_original(rng)
    source = tmp_path / "source.png"
    Image.fromarray(original[0]).save(source)
    paths = []
    for i, tag in enumerate(tags):
        path = tmp_path / f"candidate_{i}.png"
        Image.fromarray(make_item(rng, tag, original=original).candidate).save(path)
        paths.append(path)
    return source, paths


def test_plain_files_from_the_command_line_write_jsonl_csv_and_a_sheet(runner, tmp_path):
    source, paths = _files(tmp_path, [None, "color_shifted", None, "product_cropped"])
    out = tmp_path / "out"
    result = runner.invoke(app, ["check", str(source), *map(str, paths), "-o", str(out), "--no-ocr"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "checks.jsonl").read_text().splitlines()]
    assert [line["candidate"] for line in lines] == [str(p) for p in paths]
    for line in lines:
        assert set(line) == {"source", "candidate", "findings", "measured"}
        assert {"located", "color_delta_e", "warp_percent", "cropped_share"} <= set(line["measured"])
        for finding in line["findings"]:  # only what failed, each with its value, threshold and confidence
            assert {"tag", "value", "threshold", "confidence"} <= set(finding) and 0.5 <= finding[
                "confidence"
            ] <= 1
    assert [sorted(f["tag"] for f in line["findings"]) for line in lines] == [
        [],
        ["color_shifted"],
        [],
        ["product_cropped"],
    ]
    rows = list(csv.DictReader((out / "checks.csv").open()))
    assert [r["tags"] for r in rows] == ["", "color_shifted", "", "product_cropped"]
    sheet = (out / "index.html").read_text()
    assert sheet.count('class="badge bad">fails') == 2 and "Colour shifted" in sheet
    for src in re.findall(r'src="([^"]+)"', sheet):
        assert (out / src).is_file()
    assert "2 with findings" in result.output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: [tmp / "missing.png", tmp / "also.png"], "no such image file"),
        (lambda tmp: [_text(tmp / "source.png"), _text(tmp / "c.png")], "cannot read"),
    ],
)
def test_bad_files_are_one_line(runner, tmp_path, make, message):
    result = runner.invoke(app, ["check", *map(str, make(tmp_path)), "--no-ocr"])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def _text(path: Path) -> Path:
    path.write_text("not an image")
    return path


def test_ocr_reads_the_printed_name_back_and_the_print_check_flags_it_garbled(tmp_path):
    source, paths = _files(tmp_path, [None, "text_garbled"], seed=5)
    records, _ = check_files(source, paths, CheckConfig(ocr=True))
    clean, garbled = (r["measured"]["ocr_similarity"] for r in records)
    assert clean is not None and clean >= 0.7  # the original's text read back from the untouched candidate
    assert garbled is None or garbled < clean
    assert "text_garbled" in {f["tag"] for f in records[1]["findings"]}


def test_workspace_checks_are_stored_and_resumed(workspace, tmp_path):
    add_perturbed_sources(workspace, [[None, "occluded", None, None], ["scale_wrong", None, None, None]])
    config = CheckConfig(ocr=False, output_dir=tmp_path / "out")
    first = check_workspace(workspace, config)
    assert (first.checked, first.reused) == (8, 0)
    assert first.tags == {
        "occluded": 1,
        "scale_wrong": 1,
    }  # expected scale 1: the recipe keeps the product size
    again = check_workspace(workspace, config)
    assert (again.checked, again.reused) == (0, 8)  # resumed: nothing measured twice
    changed = check_workspace(workspace, config.model_copy(update={"color_delta_e": 3.0}))
    assert changed.checked == 8  # other settings: measured again
    rows = workspace.catalog.query("SELECT COUNT(*) FROM candidate_checks")
    assert rows[0][0] == 8
    assert len((tmp_path / "out" / "checks.jsonl").read_text().splitlines()) == 8


def test_a_group_of_plain_files_judges_scale_against_its_siblings(tmp_path):
    source, paths = _files(tmp_path, [None, None, "scale_wrong", None], seed=9)
    records = check_group(files_group(source, paths), FAST)
    assert [bool(r["findings"]) for r in records] == [False, False, True, False]
    assert records[2]["findings"][0]["tag"] == "scale_wrong" and records[0]["expected_scale"] is not None


def test_generate_drop_failing_keeps_broken_candidates_from_annotators(
    runner, workspace, tmp_path, monkeypatch
):
    from medgen.sources.samples import write_samples

    monkeypatch.chdir(workspace.root)
    runner.invoke(app, ["sources", "add", *map(str, write_samples(tmp_path / "photos", 6, seed=2))])
    result = runner.invoke(
        app,
        [
            "generate",
            "--backend",
            "synthetic",
            "--resolution",
            "256",
            "--drop-failing",
            "--drop-retries",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    dropped = tables.dropped(workspace)
    assert dropped, "the synthetic backend's injected defects give the checks something to drop"
    assert f"kept {len(dropped)} clearly broken candidate(s) from annotators" in result.output
    shown = {c.image_key for c in workspace.catalog.candidates()}
    for row in dropped:
        assert row["image_key"] not in shown  # no task will show it
        assert row["reasons"] and all(f["confidence"] >= 0.9 for f in row["reasons"])
        assert workspace.store.exists(row["image_key"])  # never deleted
    # The slots were made again, in a second run with other seeds.
    runs = {row["run_id"] for row in workspace.catalog.query("SELECT run_id FROM candidates")}
    assert len(runs) == 2
    retried = [c for c in workspace.catalog.candidates() if c.id in {d["id"] for d in dropped}]
    old_seeds = {
        json.loads(r[0])["seed"] for r in workspace.catalog.query("SELECT provenance FROM dropped_candidates")
    }
    assert retried and not {c.provenance.seed for c in retried} & old_seeds


def test_an_unreadable_candidate_is_not_judged_and_the_run_goes_on(workspace):
    add_perturbed_sources(workspace, [[None, "occluded", None, None]])
    lost = workspace.catalog.candidates()[1]
    workspace.store.path(lost.image_key).unlink()
    report = check_workspace(workspace, FAST)
    assert report.checked == 4
    records = tables.stored(workspace, [c.id for c in workspace.catalog.candidates()])
    assert records[lost.id]["located_by"].startswith("error") and records[lost.id]["findings"] == []
    assert all(r["located_by"] == "features" for k, r in records.items() if k != lost.id)
    sheet = check_workspace(workspace, FAST.model_copy(update={"output_dir": workspace.root / "out"}))
    page = (workspace.root / "out" / "index.html").read_text()
    assert sheet.reused == 4 and "not checked (FileNotFoundError)" in page and "file missing" in page
