"""Pre-annotation: screener answers as Label Studio predictions, queue order by uncertainty, what annotators kept."""

from __future__ import annotations

import json

import pytest

from annotation.agreement import agreement
from annotation.prefill import (
    SIMULATED_MODEL,
    _label_from_screen,
    edit_rates,
    resolve,
    screen_prefills,
    simulated_prefill,
    stored,
)
from annotation.pull import pull
from annotation.push import PushConfig, push
from annotation.simulate import simulate_annotators
from medgen.errors import MedgenError
from schemas import LETTERS, CandidateLabel
from tests.annotation.conftest import add_sources


def _record(source: str, letter: str, verdict: str, dims: list[str], reasons: dict, confidence=0.8) -> dict:
    shares = {
        d: (1.0 if d in dims else 0.0)
        for d in ("appearance_deformation", "lighting_shadow", "placement_layout", "extension_rationality")
    }
    return {
        "candidate": f"{source}-{letter}", "source": source, "letter": letter, "path": "x.png",
        "verdict": verdict, "publishable": verdict == "publishable", "confidence": confidence,
        "p_publishable": 0.5, "defects": shares, "defective_dimensions": dims, "reasons": reasons,
        "samples": 3, "unparsed": 0,
    }  # fmt: skip


def test_screen_records_become_the_tags_a_person_would_tick():
    named = _label_from_screen(
        _record(
            "s", "A", "reject", ["placement_layout"], {"placement_layout": "Floating: hovers over the shelf."}
        )
    )
    assert named.defects == ("floating",) and not named.acceptable
    unnamed = _label_from_screen(
        _record("s", "B", "reject", ["lighting_shadow"], {"lighting_shadow": "odd glow"})
    )
    assert unnamed.defects == ("lighting_other",) and unnamed.rationale == "odd glow"
    clean = _label_from_screen(_record("s", "C", "publishable", [], {}))
    assert clean.acceptable and clean.defects == ()
    # Rejected with no dimension over the threshold: the most likely dimension's "Other" tag.
    record = _record("s", "D", "reject", [], {"overall": "looks pasted on"})
    record["defects"]["extension_rationality"] = 0.4
    vague = _label_from_screen(record)
    assert vague.defects == ("extension_other",) and vague.rationale == "looks pasted on"


def test_screen_output_gives_one_prefill_per_fully_screened_source(tmp_path):
    lines = [
        _record("s1", letter, "publishable", [], {}, confidence=0.6 + 0.1 * i)
        for i, letter in enumerate(LETTERS)
    ]
    lines += [_record("s2", "A", "publishable", [], {})]  # only one candidate: not one task's four
    path = tmp_path / "screen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    (tmp_path / "screen_config.json").write_text(json.dumps({"checkpoint": "x", "model": "judge-v1"}))
    prefills = screen_prefills(path)
    assert set(prefills) == {"s1"}
    assert prefills["s1"].score == pytest.approx(0.6) and prefills["s1"].model_version == "judge-v1"
    path.write_text("not json\n")
    with pytest.raises(MedgenError, match="line 1 is not a medgen screen record"):
        screen_prefills(path)


def test_bad_prediction_specs_are_one_line(tmp_path):
    with pytest.raises(MedgenError, match="unknown kind 'bogus'"):
        resolve("bogus:x", None)  # type: ignore[arg-type]
    with pytest.raises(MedgenError, match="use simulated, checks, screen:PATH"):
        resolve("screen", None)  # type: ignore[arg-type]
    with pytest.raises(MedgenError, match="no screen output at"):
        resolve(f"screen:{tmp_path / 'missing.jsonl'}", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--order uncertainty needs --predictions"):
        PushConfig(order="uncertainty")


def test_edit_rates_count_kept_changed_added_and_removed():
    floating = CandidateLabel(defects=("floating",), acceptable=False)
    scale = CandidateLabel(defects=("scale_wrong",), acceptable=False)
    ok = CandidateLabel(acceptable=True)
    prefill = (floating, floating, ok, ok)
    answer = (floating, scale, floating, ok)  # kept, changed, added, kept
    rates = edit_rates([(prefill, answer), (prefill, (ok, ok, ok, ok))])  # then: removed, removed, kept, kept
    placement = rates["placement_layout"]
    assert placement["n"] == 8
    assert (placement["kept"], placement["changed"], placement["added"], placement["removed"]) == (
        4 / 8,
        1 / 8,
        1 / 8,
        2 / 8,
    )
    assert rates["lighting_shadow"]["kept"] == 1.0


@pytest.mark.labelstudio
def test_prefilled_queues_ordered_by_uncertainty_and_the_edits_reported(ls_workspace, connection):
    ws = ls_workspace
    sources = add_sources(ws, 8)
    config = PushConfig(
        annotators=["ann1", "ann2"], overlap=2, gold_rate=0.25, predictions="simulated", order="uncertainty"
    )
    report = push(ws, connection, config)
    assert report.prefilled == 8
    prefills = stored(ws)
    assert set(prefills) == set(sources)
    for project in ws.catalog.query("SELECT DISTINCT ls_project_id FROM tasks"):
        tasks = list(
            connection.client.tasks.list(project=project["ls_project_id"], fields="all", page_size=100)
        )
        tasks.sort(key=lambda t: t.id)  # Label Studio serves a queue in task id order
        scores = [t.predictions[0].score for t in tasks]
        assert scores == sorted(scores), "least confident first"
        for task in tasks:  # gold and non-gold alike carry the screener's pre-fill
            [prediction] = task.predictions
            expected = simulated_prefill(
                task.data["source_id"], ws.catalog.candidates(task.data["source_id"])
            )
            assert prediction.model_version == SIMULATED_MODEL and prediction.score == expected.score
    simulate_annotators(
        ws, connection, noise=0.0, seed=0
    )  # perfect annotators: they fix every screener error
    pull(ws, connection)
    result = agreement(ws, connection)
    edits = result.prefill_edits
    assert set(edits) == {
        "appearance_deformation",
        "lighting_shadow",
        "placement_layout",
        "extension_rationality",
    }
    wrong = sum(
        p != t
        for s in sources
        for p, t in zip(
            prefills[s].labels,
            [
                CandidateLabel(defects=tuple(c.injected_defects), acceptable=not c.injected_defects)
                for c in sorted(ws.catalog.candidates(s), key=lambda c: c.slot)
            ],
            strict=True,
        )
    )
    assert wrong > 0 and all(0 < rates["kept"] <= 1 for rates in edits.values())
    assert any(rates["kept"] < 1 for rates in edits.values())  # the screener's errors were corrected
    saved = json.loads(result.report_path.read_text())["prefill_edits"]
    assert saved.keys() == edits.keys()


def test_model_prefill_screens_the_workspace_first(tmp_path):
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.screen.cli import screen_for_prefill  # the screener the medgen command hands to push
    from medgen.sources.ingest import add_sources as ingest
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace
    from training.tiny import build_tiny_vlm

    ws = init_workspace(tmp_path / "ws")
    ingest(ws, write_samples(tmp_path / "photos", 1, seed=0))
    generate(ws, GenerationConfig(backend="synthetic"))
    model = build_tiny_vlm(tmp_path / "tiny")
    prefill_of = resolve(f"model:{model}", ws, screen_for_prefill)
    assert (ws.root / "screen" / "prefill" / "screen.jsonl").is_file()
    source = ws.catalog.sources()[0].id
    # A random-weight model gives no readable answer: no pre-fill is proposed rather than a guess.
    assert prefill_of(source, ws.catalog.candidates(source)) is None
    ws.close()


def test_endpoint_prefill_screens_through_the_api(tmp_path, chat_server, monkeypatch):
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.screen.cli import screen_for_prefill
    from medgen.sources.ingest import add_sources as ingest
    from medgen.sources.samples import write_samples
    from medgen.workspace import init_workspace
    from tests.training.eval_data import API_KEY

    ws = init_workspace(tmp_path / "ws")
    ingest(ws, write_samples(tmp_path / "photos", 1, seed=0))
    generate(ws, GenerationConfig(backend="synthetic"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(MedgenError, match=r"\$OPENAI_BASE_URL"):
        resolve("endpoint:judge", ws, screen_for_prefill)
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    chat_server.reply = lambda body: (200, "<think>Image C: Floating: it hovers.</think><answer>C</answer>")
    prefill_of = resolve("endpoint:judge", ws, screen_for_prefill)
    source = ws.catalog.sources()[0].id
    prefill = prefill_of(source, ws.catalog.candidates(source))
    assert len(chat_server.requests) == 5 * 3  # five questions, three samples each
    # Every question names only C: A, B and D are not acceptable, C is acceptable but flagged in each dimension,
    # so its pre-fill carries the tag its reason names (floating) and "Other" tags elsewhere.
    assert prefill is not None and prefill.model_version == "judge" and prefill.score == 1.0
    assert prefill.labels[2].defects and "floating" in prefill.labels[2].defects
    ws.close()


def test_the_screener_is_handed_down_not_registered(tmp_path):
    """Pre-annotation runs a screener it is given (the medgen command gives `medgen screen`'s core)."""
    import typer

    from medgen.cli import app, wire
    from medgen.screen.cli import screen_for_prefill

    with pytest.raises(MedgenError, match="runs the screener, which this caller did not provide"):
        resolve("model:some/checkpoint", None)  # type: ignore[arg-type]
    ctx = typer.Context(typer.main.get_command(app))
    wire(ctx)
    assert ctx.obj.screener is screen_for_prefill


@pytest.mark.labelstudio
def test_the_automatic_checks_prefill_every_task(ls_workspace, connection):
    from annotation.prefill import CHECKS_MODEL
    from medgen.checks.config import CheckConfig
    from medgen.checks.tables import stored as stored_checks
    from tests.medgen.checks.conftest import add_perturbed_sources

    ws = ls_workspace
    sources = add_perturbed_sources(
        ws, [[None, "color_shifted", None, "occluded"], [None, None, "product_cropped", None]]
    )
    report = push(ws, connection, PushConfig(annotators=["ann1"], predictions="checks"))
    assert report.prefilled == 2
    prefills = stored(ws)
    for source_id in sources:
        candidates = ws.catalog.candidates(source_id)
        checks = stored_checks(ws, [c.id for c in candidates], CheckConfig().digest())
        labels = prefills[source_id].labels
        assert prefills[source_id].model_version == CHECKS_MODEL
        for candidate, label in zip(candidates, labels, strict=True):
            tags = {f["tag"] for f in checks[candidate.id]["findings"]}
            assert set(label.defects) == tags and label.acceptable == (not tags)
    assert set(prefills[sources[0]].labels[1].defects) == {"color_shifted"}
    assert set(prefills[sources[1]].labels[2].defects) == {"product_cropped"}
    [project] = ws.catalog.query("SELECT DISTINCT ls_project_id FROM tasks")
    tasks = list(connection.client.tasks.list(project=project["ls_project_id"], fields="all", page_size=100))
    assert {t.predictions[0].model_version for t in tasks} == {CHECKS_MODEL}
