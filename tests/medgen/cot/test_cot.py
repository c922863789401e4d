"""`medgen cot`: a teacher explains known answers through a local chat-completions server; validation,
storage, resume, export --rationale teacher and the card; the API key stays out of every file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medgen.cli import app
from medgen.cot.cot import CotConfig, TeacherQuestion, teacher_prompt, validate
from medgen.export.rationales import ACCEPTED, REJECTED, TEACHER
from medgen.workspace import Workspace
from schemas.models import answer_letters
from schemas.prompts import rationale_text
from schemas.taxonomy import OVERALL, TAXONOMY
from tests.annotation.conftest import add_sources
from tests.training.eval_data import API_KEY
from tests.training.evaluation.conftest import ChatServer

GOOD = (
    "Image A looks like the original product, straight and sharp. Image B keeps the label but the box "
    "leans over as if melted at one corner. Image C matches the shape and colours of the original. "
    "Image D has the same outline, with clean edges and no smearing. So the answer follows."
)


def _known_answer(body: dict) -> str:
    text = " ".join(
        p.get("text", "") for m in body["messages"] for p in m["content"] if isinstance(m["content"], list)
    )
    match = re.search(r"The correct answer, given by expert annotators, is: ([A-D,]+|none)\.", text)
    assert match, text
    return match[1]


def _teacher(body: dict) -> tuple[int, str]:
    """A teacher that explains the known answer, except about lighting (it contradicts) and placement (tag ids)."""
    answer = _known_answer(body)
    text = " ".join(
        p.get("text", "") for m in body["messages"] for p in m["content"] if isinstance(m["content"], list)
    )
    if TAXONOMY.dimension("lighting_shadow").description in text:
        wrong = "D" if answer != "D" else "A"
        return 200, f"<think>{GOOD}</think><answer>{wrong}</answer>"
    if TAXONOMY.dimension("placement_layout").description in text:
        return 200, f"<think>{GOOD} Tags: floating, scale_wrong.</think><answer>{answer}</answer>"
    return 200, f"<think>{GOOD}</think><answer>{answer}</answer>"


@pytest.fixture
def labelled(workspace: Workspace) -> Workspace:
    add_sources(workspace, 6)  # synthetic candidates with injected defects: known answers
    return workspace


def _cot(runner: CliRunner, ws: Workspace, server: ChatServer, *extra: str):
    return runner.invoke(
        app,
        [
            "cot",
            "-w",
            str(ws.root),
            "--endpoint",
            server.url,
            "--model",
            "teacher-vl",
            "--labels",
            "injected",
            *extra,
        ],
        catch_exceptions=False,
    )


def test_teacher_rationales_are_validated_stored_resumed_and_exported(
    labelled: Workspace, chat_server: ChatServer, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    chat_server.reply = _teacher
    first = _cot(runner, labelled, chat_server, "--limit", "3")
    assert first.exit_code == 0, first.output
    assert len(chat_server.requests) == 3  # resumable: a partial run stores what it asked
    result = _cot(runner, labelled, chat_server)
    assert result.exit_code == 0, result.output
    rows = labelled.catalog.query("SELECT * FROM rationales WHERE origin = ?", (TEACHER,))
    questions = len(rows)
    assert len(chat_server.requests) == questions and questions > 6  # each question asked once in all
    request = chat_server.requests[0]
    user = request["messages"][1]["content"]
    assert sum(part["type"] == "image_url" for part in user) == 5  # the original and A-D
    assert request["model"] == "teacher-vl"

    by_dimension: dict[str, set[str]] = {}
    for row in rows:
        by_dimension.setdefault(row["dimension"], set()).add(row["status"])
        assert row["model"] == "teacher-vl"
        if row["status"] == ACCEPTED:
            assert row["text"] == GOOD and row["reason"] is None
        else:
            assert row["text"] is None and row["reason"]
    assert by_dimension["lighting_shadow"] == {REJECTED}
    assert by_dimension["placement_layout"] == {REJECTED}
    assert by_dimension[OVERALL] == {ACCEPTED}
    reasons = {row["dimension"]: row["reason"] for row in rows if row["status"] == REJECTED}
    assert reasons["lighting_shadow"].startswith("contradicts the gold answer")
    assert reasons["placement_layout"].startswith("quotes tag ids")
    assert "contradicts the gold answer" in result.output and "quotes tag ids" in result.output
    report = json.loads((labelled.reports_dir / "cot.json").read_text())
    assert report["teacher_models"] == ["teacher-vl"]
    assert len(report["rejected"]) == sum(row["status"] == REJECTED for row in rows)

    # Rerun: nothing to ask; --retry-rejected asks only about the rejected ones again.
    assert _cot(runner, labelled, chat_server).exit_code == 0
    assert len(chat_server.requests) == questions
    assert _cot(runner, labelled, chat_server, "--retry-rejected").exit_code == 0
    assert len(chat_server.requests) == questions + len(report["rejected"])

    # Export with the teacher's rationales: accepted ones replace the template; the rest fall back.
    exported = runner.invoke(
        app,
        [
            "export",
            "-w",
            str(labelled.root),
            "--version",
            "v1",
            "--labels",
            "injected",
            "--rationale",
            "teacher",
        ],
        catch_exceptions=False,
    )
    assert exported.exit_code == 0, exported.output
    folder = labelled.exports_dir / "v1"
    data = datasets.load_dataset("parquet", data_dir=str(folder / "data"))
    samples = [row for split in data.values() for row in split]
    accepted = {row["sample_id"] for row in rows if row["status"] == ACCEPTED}
    teacher_made = [s for s in samples if s["id"] in accepted]
    assert teacher_made and all(s["rationale"] == GOOD for s in teacher_made)
    assert all(GOOD in s["completion"][0]["content"][0]["text"] for s in teacher_made)
    assert all(s["rationale"] != GOOD for s in samples if s["id"] not in accepted)
    card = (folder / "README.md").read_text()
    assert f"`teacher-vl` ({len(teacher_made)})" in card
    assert f"{len(samples) - len(teacher_made)} samples had no accepted teacher rationale" in card
    for path in labelled.root.rglob("*"):  # the key never reaches a file
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    assert API_KEY not in result.output + first.output


def _question(answer: str = "B", dimension: str = "appearance_deformation") -> TeacherQuestion:
    from schemas import CandidateLabel

    labels = [CandidateLabel(acceptable=True), CandidateLabel(defects=("product_warped",), acceptable=False)]
    labels += [CandidateLabel(acceptable=True)] * 2
    assert ",".join(answer_letters(labels, dimension)) == answer
    return TeacherQuestion(
        id="q",
        source_id="s",
        dimension=dimension,
        answer=answer,
        template=rationale_text(labels, dimension, notes=False),
        prompt=teacher_prompt(dimension, answer),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"<think>{GOOD}</think><answer>B</answer>", None),
        (f"{GOOD} So B.", "unparseable"),
        (
            f"<think>{GOOD}</think><answer>B,C</answer>",
            "contradicts the gold answer: concludes B,C, gold is B",
        ),
        (f"<think>{GOOD} (product_warped)</think><answer>B</answer>", "quotes tag ids (product_warped)"),
        (
            f"<think>{GOOD.replace('Image D', 'The last one')}</think><answer>B</answer>",
            "does not discuss image(s) D",
        ),
        ("<think>Image A, B, C and D: B is bent.</think><answer>B</answer>", "too short: 9 words"),
        (f"<think>{GOOD * 8}</think><answer>B</answer>", "too long"),
    ],
)
def test_validation_rejects_with_a_reason(text: str, reason: str | None) -> None:
    rationale, why = validate(text, _question(), CotConfig(model="t"))
    if reason is None:
        assert rationale == GOOD and why == ""
    else:
        assert rationale is None and why.startswith(reason)


def test_a_copy_of_the_template_is_rejected() -> None:
    question = _question()
    rationale, why = validate(
        f"<think>{question.template}</think><answer>B</answer>", question, CotConfig(model="t")
    )
    assert rationale is None and why.startswith("restates the template rationale")


def test_bad_settings_are_one_line(runner: CliRunner, labelled: Workspace) -> None:
    result = runner.invoke(app, ["cot", "-w", str(labelled.root), "--model", "t", "--endpoint", "ftp://x"])
    assert result.exit_code != 0 and "--endpoint must be an http(s) URL" in result.output
    result = runner.invoke(
        app,
        [
            "cot",
            "-w",
            str(labelled.root),
            "--model",
            "t",
            "--endpoint",
            "http://x/v1",
            "--min-words",
            "9",
            "--max-words",
            "5",
        ],
    )
    assert result.exit_code != 0 and "--min-words 9 exceeds --max-words 5" in result.output


def test_a_local_checkpoint_can_be_the_teacher(
    labelled: Workspace, tiny_model: Path, runner: CliRunner
) -> None:
    """The same path with a transformers checkpoint: a random-weight model writes no valid rationale."""
    result = runner.invoke(
        app,
        ["cot", "-w", str(labelled.root), "--model", str(tiny_model), "--labels", "injected", "--limit", "2",
         "--max-new-tokens", "8", "--device", "cpu"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = labelled.catalog.query("SELECT status, reason, model FROM rationales")
    assert len(rows) == 2 and {r["status"] for r in rows} == {REJECTED}
    assert all(r["reason"].startswith("unparseable") and r["model"] == str(tiny_model) for r in rows)
