"""The main job end to end: `medgen demo` on CPU, then the notebooks on its output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medgen.cli import app

NOTEBOOKS = sorted((Path(__file__).resolve().parents[3] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("demo") / "medgen-demo"
    result = CliRunner().invoke(app, ["demo", str(root)])  # as a user runs it: the defaults
    assert result.exit_code == 0, result.output
    assert "medgen demo finished" in result.output
    (root / "demo-output.txt").write_text(result.output)
    return root


@pytest.mark.slow
@pytest.mark.labelstudio
def test_demo_runs_every_stage(demo_workspace):
    counts = json.loads((demo_workspace / "reports" / "agreement.json").read_text())
    assert counts["annotators"] == ["ann1", "ann2", "ann3"]
    from medgen.workspace import open_workspace

    with open_workspace(demo_workspace) as ws:
        c = ws.counts()
        server_file = ws.labelstudio_dir / "server.json"
    assert c["sources"] == 24 and c["candidates"] == 96 and c["sources_complete"] == 24
    assert c["annotations"] >= 24 * 3 * 0.8  # simulated annotators skip a few tasks
    assert c["exports"] == 1
    export = demo_workspace / "exports" / "v1"
    card = (export / "README.md").read_text()
    assert "simulated" in card.lower()
    for stage in ("sft", "grpo"):
        assert (demo_workspace / "runs" / "train" / stage / "model.safetensors").is_file()
        assert (demo_workspace / "runs" / "train" / stage / "train_config.yaml").is_file()
        assert (demo_workspace / "runs" / "train" / stage / "trainer_state.json").is_file()
        logged = (demo_workspace / "runs" / "train" / stage / "train_log.jsonl").read_text().splitlines()
        assert "grad_norm" in json.loads(logged[0])  # the trainer's log lines are kept in the run's folder
    results = json.loads((demo_workspace / "eval" / "v1" / "results.json").read_text())
    assert [m["kind"] for m in results["models"]] == ["checkpoint", "random", "majority", "human"]
    assert (demo_workspace / "eval" / "v1" / "results.png").is_file()
    output = (demo_workspace / "demo-output.txt").read_text()
    assert "sft loss (log scale), steps 25-500" in output and "grpo reward, steps 1-10" in output
    assert "where the demo model stands: format" in output
    assert "grad_norm" not in output and "{'loss'" not in output  # ... and not shown between the stages
    assert "benchmarks/README.md" in output  # the verdict points at what a longer run learns
    # Stage 9: new products generated in a workspace of their own, screened by the trained model.
    screened = (demo_workspace / "screen" / "screen.jsonl").read_text().splitlines()
    assert len(screened) == 8 and "screened 8 new candidates of 2 products" in output
    assert (demo_workspace / "screen" / "contact_sheet.html").is_file()
    assert not server_file.exists() or not _server_alive(server_file)  # the demo stops its server


@pytest.mark.slow
@pytest.mark.labelstudio
def test_the_demo_model_learns_the_answer_format(demo_workspace):
    """Greedy answers on the test split parse, nearly all in the full format (the issue's bar: 95 %)."""
    results = json.loads((demo_workspace / "eval" / "v1" / "results.json").read_text())
    trained = results["models"][0]["scores"]["all"]
    assert trained["n"] >= 10
    assert trained["parse_failures"] == 0
    assert trained["format_rate"] >= 0.95
    sft_log = json.loads((demo_workspace / "runs" / "train" / "sft" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in sft_log["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0] / 10  # it learnt: the loss fell by more than an order of magnitude


def _server_alive(server_file: Path) -> bool:
    pid = json.loads(server_file.read_text()).get("pid")
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.labelstudio
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebooks_run_top_to_bottom(demo_workspace, notebook, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MEDGEN_DEMO", str(demo_workspace))
    book = nbformat.read(notebook, as_version=4)
    NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    ).execute()
    errors = [
        o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"
    ]
    assert not errors


def test_the_notebooks_ship():
    assert {n.stem for n in NOTEBOOKS} == {
        "explore_dataset",
        "annotation_agreement",
        "evaluation_report",
        "preannotation_savings",
    }


def test_demo_pauses_for_real_annotators_when_nothing_has_labels(tmp_path, monkeypatch):
    """Diffusers candidates have no known labels: the demo stops before export and keeps Label Studio up."""
    from medgen.demo.demo import Demo, DemoConfig

    calls: list[str] = []
    monkeypatch.setattr(Demo, "add_samples", lambda self, ws: calls.append("samples"))
    monkeypatch.setattr(Demo, "generate", lambda self, ws: calls.append("generate"))
    monkeypatch.setattr(Demo, "annotate", lambda self, ws: calls.append("annotate") or 0)
    monkeypatch.setattr(Demo, "export", lambda self, ws: pytest.fail("exported without labels"))
    stopped: list[object] = []
    monkeypatch.setattr("annotation.server.running_server", lambda ws: object())
    monkeypatch.setattr("annotation.server.stop", lambda ws: stopped.append(ws))
    result = Demo(DemoConfig(directory=tmp_path / "demo", backend="diffusers", model="some/model")).run()
    assert result["paused"] and calls == ["samples", "generate", "annotate"]
    assert not stopped, "the server must stay up for the annotators"
