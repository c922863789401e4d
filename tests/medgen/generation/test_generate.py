"""medgen generate: recipes on a tiny diffusers pipeline, resume after kill -9, sharding, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from medgen.cli import app
from medgen.errors import MedgenError
from medgen.generation.backends.base import candidate_seed
from medgen.generation.config import GenerationConfig, load_config
from medgen.generation.generate import GenerationAborted, generate, manifest_path, run_generation
from medgen.sources.ingest import add_sources
from medgen.workspace import Workspace, init_workspace, open_workspace
from tests.medgen.generation.conftest import FlatBackend

REPO = Path(__file__).resolve().parents[3]
FAST = {"resolution": 32, "steps": 2, "device": "cpu", "batch_size": 4}


def tiny_config(model: Path, **fields: object) -> GenerationConfig:
    return GenerationConfig(model=str(model), **{**FAST, **fields})


def assert_complete(ws: Workspace, n: int = 4) -> None:
    """Every source has exactly n candidates, each row's file is whole, and no store file is orphaned."""
    slots = ws.catalog.candidate_slots()
    for source in ws.catalog.sources():
        assert slots.get(source.id) == set(range(n)), source.original_name
    rows = ws.catalog.query("SELECT source_id, slot, COUNT(*) AS n FROM candidates GROUP BY source_id, slot")
    assert all(row["n"] == 1 for row in rows)
    for candidate in ws.catalog.candidates():
        assert ws.store.intact(candidate.image_key)
    assert set(ws.store.keys()) <= ws.catalog.referenced_keys()


# ------------------------------------------------------------------------------------ recipes --


def test_background_keeps_the_product_pixels_exactly(workspace, photos_dir, tiny_inpaint):
    add_sources(workspace, [photos_dir])
    report = generate(workspace, tiny_config(tiny_inpaint, recipe="background"), limit=2)
    assert report.images_generated == 8 and not report.failures
    for candidate in workspace.catalog.candidates():
        source = workspace.catalog.source(candidate.source_id)
        original = np.asarray(workspace.store.open(source.image_key).convert("RGB"))
        mask = np.asarray(workspace.store.open(source.mask_key)) >= 128
        output = np.asarray(workspace.store.open(candidate.image_key))
        assert output.shape == original.shape
        assert mask.any() and (~mask).any()
        assert np.array_equal(output[mask], original[mask])  # the product, pixel for pixel
        assert np.abs(output[~mask].astype(int) - original[~mask]).mean() > 5  # a new background
        assert candidate.provenance.recipe == "background"


def test_outpaint_grows_the_canvas_and_keeps_the_original(workspace, photos_dir, tiny_inpaint):
    add_sources(workspace, [photos_dir])
    generate(
        workspace, tiny_config(tiny_inpaint, recipe="outpaint", outpaint_aspect="16:9", candidates=2), limit=1
    )
    candidates = workspace.catalog.candidates()
    assert len(candidates) == 2
    for candidate in candidates:
        source = workspace.catalog.source(candidate.source_id)
        original = np.asarray(workspace.store.open(source.image_key).convert("RGB"))
        output = np.asarray(workspace.store.open(candidate.image_key))
        h, w = original.shape[:2]
        oh, ow = output.shape[:2]
        assert ow / oh == pytest.approx(16 / 9, rel=0.02) and ow > w and oh > h
        top, left = (oh - h) // 2, (ow - w) // 2
        assert np.array_equal(output[top : top + h, left : left + w], original)
        assert (candidate.provenance.width, candidate.provenance.height) == (ow, oh)


def test_img2img_makes_variations(workspace, photos_dir, tiny_img2img):
    add_sources(workspace, [photos_dir])
    generate(workspace, tiny_config(tiny_img2img, recipe="img2img", strength=0.8, candidates=2), limit=1)
    candidates = workspace.catalog.candidates()
    assert len(candidates) == 2 and candidates[0].image_key != candidates[1].image_key
    provenance = candidates[0].provenance
    assert provenance.recipe == "img2img" and provenance.strength == 0.8
    assert json.loads(provenance.extra)["pipeline"] == "StableDiffusionImg2ImgPipeline"


def test_same_seed_same_images_other_seed_other_images(tmp_path, photos_dir, tiny_inpaint):
    keys = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        with init_workspace(tmp_path / name) as ws:
            add_sources(ws, [photos_dir])
            generate(ws, tiny_config(tiny_inpaint, seed=seed, candidates=2), limit=1)
            keys.append([c.image_key for c in ws.catalog.candidates()])
    assert keys[0] == keys[1]
    assert not set(keys[0]) & set(keys[2])


@pytest.mark.parametrize(
    ("scenes", "batch"),
    [(None, 8), (["one scene for all"], 4)],
    ids=["several-sources-per-call", "one-source-one-prompt-per-call"],
)
def test_batched_calls_match_one_image_calls(tmp_path, photos_dir, tiny_inpaint, scenes, batch):
    """An image depends on its seed only, whether its call held several sources or one source and prompt."""
    made = []
    for batch_size in (1, batch):
        with init_workspace(tmp_path / f"b{batch_size}") as ws:
            add_sources(ws, [photos_dir])
            extra = {"scenes": scenes} if scenes else {}
            generate(ws, tiny_config(tiny_inpaint, batch_size=batch_size, candidates=4, **extra), limit=2)
            made.append(
                {
                    (c.source_id, c.slot): np.asarray(ws.store.open(c.image_key), np.int16)
                    for c in ws.catalog.candidates()
                }
            )
    assert made[0].keys() == made[1].keys() and len(made[0]) == 8
    for key, image in made[0].items():
        assert np.abs(image - made[1][key]).max() <= 2  # batched kernels may round differently, nothing more


def test_provenance_and_resolved_config_are_recorded(workspace, photos_dir, tiny_inpaint):
    add_sources(workspace, [photos_dir])
    config = tiny_config(
        tiny_inpaint, seed=7, candidates=1, scenes=["a {product} on a shelf"], product_name="blister pack"
    )
    report = generate(workspace, config, limit=1)
    (candidate,) = workspace.catalog.candidates()
    provenance = candidate.provenance
    assert provenance.seed == candidate_seed(7, candidate.source_id, 0)
    assert provenance.prompt == "a blister pack on a shelf"
    assert provenance.model_id == str(tiny_inpaint) and provenance.model_revision.startswith("sha256:")
    assert (provenance.steps, provenance.guidance) == (2, 7.5)
    assert {"diffusers", "torch", "transformers"} <= set(json.loads(provenance.extra)["versions"])
    (run,) = workspace.catalog.query("SELECT * FROM generation_runs")
    assert run["id"] == report.run_id and run["status"] == "finished" and run["backend"] == "diffusers"
    assert json.loads(run["config"])["seed"] == 7
    saved = workspace.runs_dir / report.run_id / "config.yaml"
    assert load_config(saved) == config  # the run can be reproduced from its saved config alone


# ------------------------------------------------------------------------ resume and failures --


def test_rerun_generates_only_what_is_missing(workspace, photos_dir, flat_backend):
    add_sources(workspace, [photos_dir])
    first = run_generation(workspace, flat_backend, candidates=2, limit=3)
    assert first.images_generated == 6
    second = run_generation(workspace, flat_backend, candidates=4)
    assert second.images_generated == 6 * 4 - 6
    assert run_generation(workspace, flat_backend, candidates=4).images_generated == 0
    assert_complete(workspace)


def test_failed_source_is_recorded_and_the_run_goes_on(workspace, photos_dir):
    add_sources(workspace, [photos_dir])
    bad = workspace.catalog.sources()[2].id
    report = run_generation(workspace, FlatBackend(fail_sources={bad}), batch_size=6)
    assert [source for source, _ in report.failures] == [bad]
    assert "\n" not in report.failures[0][1] and "RuntimeError: cannot make" in report.failures[0][1]
    assert report.images_generated == 5 * 4
    (row,) = workspace.catalog.query("SELECT * FROM generation_failures")
    assert row["source_id"] == bad and row["run_id"] == report.run_id
    assert json.loads(report.report_path.read_text())["failures"][0]["source_id"] == bad
    # Fixed backend: the rerun fills the failed source only.
    assert run_generation(workspace, FlatBackend()).images_generated == 4
    assert_complete(workspace)


def test_an_aborting_error_stops_the_run_keeping_what_was_made(workspace, photos_dir):
    add_sources(workspace, [photos_dir])

    class OutOfMemoryBackend(FlatBackend):
        def generate(self, requests):
            if len(self.calls) == 2:
                raise GenerationAborted("out of cuda memory: try --offload")
            return super().generate(requests)

    with pytest.raises(GenerationAborted):
        run_generation(workspace, OutOfMemoryBackend(), batch_size=4)
    assert workspace.catalog.count("candidates") == 8
    assert workspace.catalog.query("SELECT status FROM generation_runs")[0]["status"] == "failed"


CRASHING_RUN = """
import os, signal, sys
from pathlib import Path
from medgen.generation.generate import run_generation
from medgen.workspace.store import ImageStore
from medgen.workspace import open_workspace
from tests.medgen.generation.conftest import FlatBackend

written = 0
put_bytes = ImageStore.put_bytes

def put_then_die(self, data, ext="png", durable=True):
    global written
    key = put_bytes(self, data, ext, durable)
    written += 1
    if written == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # after the file, before its manifest line
    return key

ImageStore.put_bytes = put_then_die
run_generation(open_workspace(Path(sys.argv[1])), FlatBackend(), batch_size=3)
"""


@pytest.mark.parametrize("kill_after", [1, 7])
def test_kill_9_mid_run_then_rerun_completes_without_duplicates_or_orphans(workspace, photos_dir, kill_after):
    add_sources(workspace, [photos_dir])
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(workspace.root), str(kill_after)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert crashed.returncode == -9, crashed.stderr
    # The killed run wrote files, some manifest lines, and no catalog rows.
    assert workspace.catalog.count("candidates") == 0
    assert len(list(workspace.store.keys())) == 12 + kill_after  # 6 sources x (image + mask) + candidates
    report = run_generation(workspace, FlatBackend())
    assert report.rows_recovered == kill_after - 1  # the last file had no manifest line yet
    assert report.orphans_removed == 1
    assert report.images_generated == 24 - (kill_after - 1)
    assert_complete(workspace)
    statuses = sorted(row["status"] for row in workspace.catalog.query("SELECT status FROM generation_runs"))
    assert statuses == ["finished", "interrupted"]


def test_a_file_torn_by_a_power_cut_is_made_again_not_merged(workspace, photos_dir):
    """Candidate files are not flushed one by one: after a power cut one may be empty under its name."""
    add_sources(workspace, [photos_dir])
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(workspace.root), "7"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert crashed.returncode == -9, crashed.stderr
    (run_dir,) = [path for path in workspace.runs_dir.iterdir() if path.is_dir()]
    lines = [json.loads(line) for line in (run_dir / "rank-0.jsonl").read_text().splitlines()]
    written = [line["candidate"]["image_key"] for line in lines if line["kind"] == "candidate"]
    assert len(written) == 6
    workspace.store.path(written[1]).write_bytes(b"")  # what the disk kept of it
    workspace.store.path(written[4]).write_bytes(workspace.store.path(written[4]).read_bytes()[:100])
    report = run_generation(workspace, FlatBackend())
    assert report.rows_recovered == 4  # six lines, two of them torn
    assert report.orphans_removed == 3  # the two torn files and the one without a line
    assert report.images_generated == 24 - 4
    assert_complete(workspace)  # the torn candidates made again, whole, under the same keys
    keys = {candidate.image_key for candidate in workspace.catalog.candidates()}
    assert {written[1], written[4]} <= keys


def test_a_runs_files_are_flushed_once_before_their_rows_go_in(
    workspace, photos_dir, flat_backend, monkeypatch
):
    import medgen.files
    import medgen.workspace.store
    from medgen.workspace.catalog import Catalog

    add_sources(workspace, [photos_dir])
    events: list[str] = []

    def recorded(name, call):
        def record(*args):
            events.append(name(*args))
            return call(*args)

        return record

    fsync, syncfs, add = os.fsync, medgen.workspace.store.sync_filesystem, Catalog.add_candidates
    monkeypatch.setattr(medgen.files.os, "fsync", recorded(lambda fd: "fsync", fsync))
    monkeypatch.setattr(medgen.workspace.store, "sync_filesystem", recorded(lambda path: "sync", syncfs))
    monkeypatch.setattr(Catalog, "add_candidates", recorded(lambda self, rows, run: f"rows {len(rows)}", add))
    report = run_generation(workspace, flat_backend, batch_size=4)
    assert report.images_generated == 24
    rows = [i for i, event in enumerate(events) if event.startswith("rows") and event != "rows 0"]
    assert rows and events.index("sync") < rows[0]
    assert events.count("sync") == 1
    assert events.count("fsync") < 24  # the manifest's per batch and the run's files: none per candidate
    assert_complete(workspace)


def test_a_live_runs_manifest_is_not_taken_for_a_crashed_one(workspace, photos_dir):
    add_sources(workspace, [photos_dir])
    from medgen.generation.manifest import ManifestWriter, recover_interrupted

    live = ManifestWriter(manifest_path(workspace, "live-run", 0))
    live.write(kind="pending", key=workspace.store.put_image(Image.new("RGB", (8, 8))))
    assert recover_interrupted(workspace) == (0, 0)  # locked: its writer is alive
    live.close()
    assert recover_interrupted(workspace) == (0, 1)


def test_remove_orphan_files_keeps_every_referenced_file(workspace, photos_dir, flat_backend):
    from medgen.generation.manifest import remove_orphan_files

    add_sources(workspace, [photos_dir])
    run_generation(workspace, flat_backend, candidates=1)
    orphan = workspace.store.put_image(Image.new("RGB", (8, 8), (1, 2, 3)))
    (workspace.store.path(orphan).parent / ".tmp-crashed-write.png").write_bytes(b"half")
    assert remove_orphan_files(workspace) == 2
    assert not workspace.store.exists(orphan)
    assert_complete(workspace, n=1)


def test_sources_filter_and_limit(workspace, photos_dir, flat_backend):
    add_sources(workspace, [photos_dir])
    sources = sorted(workspace.catalog.sources(), key=lambda s: s.id)
    report = run_generation(workspace, flat_backend, source_ids=[sources[4].id[:8], sources[1].original_name])
    assert report.sources_planned == 2
    assert set(workspace.catalog.candidate_slots()) == {sources[1].id, sources[4].id}
    assert run_generation(workspace, flat_backend, limit=1).sources_planned == 1
    assert set(workspace.catalog.candidate_slots()) == {sources[0].id, sources[1].id, sources[4].id}


def test_seeds_do_not_depend_on_batching(tmp_path, photos_dir):
    made = []
    for batch_size in (1, 5):
        with init_workspace(tmp_path / f"b{batch_size}") as ws:
            add_sources(ws, [photos_dir])
            run_generation(ws, FlatBackend(), batch_size=batch_size)
            made.append({(c.source_id, c.slot): c.image_key for c in ws.catalog.candidates()})
    assert made[0] == made[1]


# ---------------------------------------------------------------------------------- bad input --


def test_bad_model_inputs_give_one_line_errors(workspace, photos_dir, tiny_inpaint, tmp_path):
    from medgen.generation.backends.diffusers_backend import DiffusersBackend

    add_sources(workspace, [photos_dir])
    not_a_pipeline = tmp_path / "empty"
    not_a_pipeline.mkdir()
    cases = {
        str(tmp_path / "missing" / "model"): "not found",
        str(not_a_pipeline): "no model_index.json",
        "nobody-medgen/no-such-model": "cannot get model 'nobody-medgen/no-such-model' from the Hugging Face Hub",
    }
    for model, message in cases.items():
        with pytest.raises(MedgenError, match=message) as error:
            DiffusersBackend(GenerationConfig(model=model, device="cpu"))
        assert "\n" not in str(error.value)
    with pytest.raises(MedgenError, match="4-channel UNet"):
        DiffusersBackend(tiny_config(tiny_inpaint, recipe="img2img"))


def test_a_pipeline_without_inpainting_interface_is_refused(tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from medgen.generation.backends.diffusers_backend import DiffusersBackend

    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))  # fmt: skip
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "ddpm")
    with pytest.raises(MedgenError, match="DDPMPipeline, which has no inpainting interface"):
        DiffusersBackend(tiny_config(tmp_path / "ddpm"))


def test_out_of_memory_gives_advice_and_stops(workspace, photos_dir, tiny_inpaint):
    import torch

    from medgen.generation.backends.diffusers_backend import DiffusersBackend

    add_sources(workspace, [photos_dir])
    backend = DiffusersBackend(tiny_config(tiny_inpaint))

    def out_of_memory(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    backend.pipeline = out_of_memory
    with pytest.raises(GenerationAborted, match="--offload, a smaller --batch-size"):
        run_generation(workspace, backend, limit=1)
    assert workspace.catalog.count("generation_failures") == 0  # not blamed on the source


def test_config_validation(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"recipe": "paint", "steps": 3}))
    with pytest.raises(MedgenError, match="recipe"):
        load_config(bad)
    with pytest.raises(MedgenError, match="fp16 is not supported on cpu"):
        load_config(None, device="cpu", dtype="fp16")
    with pytest.raises(MedgenError, match="W:H"):
        load_config(None, outpaint_aspect="wide")
    with pytest.raises(MedgenError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"recipe": "outpaint", "steps": 3}))
    assert (
        load_config(good, steps=5).model_dump() == GenerationConfig(recipe="outpaint", steps=5).model_dump()
    )
    config = GenerationConfig()
    assert config.prompt_for(123) == config.prompt_for(123)
    assert len({config.prompt_for(seed) for seed in range(200)}) == len(config.scenes)


# ------------------------------------------------------------------------------------------ CLI --


def test_cli_generates_then_has_nothing_to_do(runner, workspace, photos_dir, tiny_inpaint, tmp_path):
    add_sources(workspace, [photos_dir])
    config = tmp_path / "gen.yaml"
    config.write_text(
        yaml.safe_dump({"model": str(tiny_inpaint), "steps": 2, "resolution": 32, "device": "cpu"})
    )
    args = ["generate", "-w", str(workspace.root), "--config", str(config), "--limit", "2", "-n", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "generated 4 image(s) for 2 source(s)" in result.output
    result = runner.invoke(
        app, [*args[:-4], "--sources", workspace.catalog.candidates()[0].source_id, "-n", "2"]
    )
    assert result.exit_code == 0 and "nothing to generate" in result.output


def test_cli_bad_input_is_one_line(runner, workspace, photos_dir, tmp_path):
    add_sources(workspace, [photos_dir])
    for args, message in (
        (["--model", str(tmp_path / "nowhere")], "model folder"),
        (["--candidates", "9"], "candidates"),
        (["--sources", "zzzzzzzz"], "no source with id"),
        (["--device", "cpu", "--offload"], "--offload"),
    ):
        result = runner.invoke(app, ["generate", "-w", str(workspace.root), *args])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0, result.output


# ------------------------------------------------------------------------------- multi-process --


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_shard_and_merge(workspace, photos_dir, tiny_inpaint):
    add_sources(workspace, [photos_dir])
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    medgen = shutil.which("medgen", path=str(Path(sys.executable).parent))
    assert torchrun and medgen
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [torchrun, "--standalone", "--nproc_per_node", "2", "--no-python", medgen, "generate",
               "-w", str(workspace.root), "--model", str(tiny_inpaint), "--device", "cpu", "--steps", "2",
               "--resolution", "32", "-n", "2"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    ws = open_workspace(workspace.root)
    assert_complete(ws, n=2)
    (run,) = ws.catalog.query("SELECT * FROM generation_runs")
    assert run["status"] == "finished" and json.loads(run["config"])["run"]["world_size"] == 2
    ids = sorted(source.id for source in ws.catalog.sources())
    for rank in (0, 1):
        lines = [json.loads(line) for line in manifest_path(ws, run["id"], rank).read_text().splitlines()]
        made = {line["candidate"]["source_id"] for line in lines if line["kind"] == "candidate"}
        assert made == set(ids[rank::2])  # source i belongs to rank i % 2
    ws.close()


# ---------------------------------------------------------------------------------------- GPU --


@pytest.mark.gpu
def test_gpu_real_checkpoint(workspace, photos_dir, tiny_inpaint):
    """A real inpainting checkpoint on CUDA in fp16 (MEDGEN_TEST_MODEL, else the tiny pipeline), batched and offloaded."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = os.environ.get("MEDGEN_TEST_MODEL", str(tiny_inpaint))
    add_sources(workspace, [photos_dir])
    for offload in (False, True):
        config = GenerationConfig(
            model=model, device="cuda", dtype="fp16", steps=4, resolution=512, offload=offload
        )
        report = generate(workspace, config, limit=1 if not offload else 2)
        assert not report.failures
    slots = workspace.catalog.candidate_slots()
    assert len(slots) == 2 and all(filled == {0, 1, 2, 3} for filled in slots.values())
    for candidate in workspace.catalog.candidates():
        source = workspace.catalog.source(candidate.source_id)
        mask = np.asarray(workspace.store.open(source.mask_key)) >= 128
        original = np.asarray(workspace.store.open(source.image_key).convert("RGB"))
        assert np.array_equal(np.asarray(workspace.store.open(candidate.image_key))[mask], original[mask])
        assert json.loads(candidate.provenance.extra)["dtype"] == "float16"


def test_requests_follow_the_plan_across_source_windows(workspace, monkeypatch) -> None:
    """Sources are read from the catalog 256 at a time: every planned source and slot, in plan order;
    every source's image and mask are asked of the disk ahead of their use."""
    from medgen.generation.generate import _requests
    from medgen.generation.plan import plan
    from tests.annotation.conftest import add_sources
    from tests.medgen.test_files import record_hints

    hinted, _ = record_hints(monkeypatch)

    add_sources(workspace, 600)
    with workspace.catalog.transaction() as conn:  # leave some slots missing, unevenly
        conn.execute("DELETE FROM candidates WHERE slot >= 2 AND rowid % 3 = 0")
        conn.execute(
            "DELETE FROM candidates WHERE source_id IN (SELECT id FROM sources ORDER BY id LIMIT 300)"
        )
    todo = plan(workspace)
    assert len(todo) > 300 and all(slots for _, slots in todo)
    made = [(r.source.id, r.slot) for batch in _requests(workspace, todo, 0, 4) for r in batch]
    assert made == [(source_id, slot) for source_id, slots in todo for slot in slots]
    sources = workspace.catalog.sources_by_id([source_id for source_id, _ in todo])
    # A hint not started when its source is reached is dropped: most are asked, none that is not planned.
    files = {workspace.store.path(key) for s in sources.values() for key in (s.image_key, s.mask_key)}
    assert set(hinted) <= files and len(set(hinted)) > len(files) / 2
    assert all(r.image.size == (24, 24) for r in next(iter(_requests(workspace, todo[-3:], 0, 4))))


def test_the_plan_keeps_ids_whole_and_grows_past_its_sizing() -> None:
    """Sized from a count taken before the query: sources added since must neither truncate nor overflow."""
    from medgen.generation.plan import Plan

    Plan.CHUNK, chunk = 3, Plan.CHUNK
    try:
        rows = [(f"s{i:02d}", 0b1111) for i in range(5)] + [("a-much-longer-id", 0b0101), ("z", 0)]
        todo = Plan.of(iter(rows), capacity=4, width=3)
    finally:
        Plan.CHUNK = chunk
    assert list(todo) == [(i, (0, 1, 2, 3)) for i, _ in rows[:5]] + [("a-much-longer-id", (0, 2)), ("z", ())]
    assert todo.images == 22 and len(todo[2:4]) == 2
    assert [i for i, _ in todo.shard(1, 3)] == ["s01", "s04"]
    assert [i for i, _ in todo.shard(0, 3)] == ["s00", "s03", "z"]
    assert list(Plan.of(iter([]))) == [] and not Plan.of(iter([]))
