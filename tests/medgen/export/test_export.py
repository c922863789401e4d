"""`medgen export`: samples, splits, streamed Parquet, card, versions, and loading back with `datasets`."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medgen.cli import app
from medgen.errors import MedgenError
from medgen.export.config import ExportConfig
from medgen.export.dataset import export_dataset
from medgen.export.load import load_export
from medgen.export.parquet import clean_image_bytes
from medgen.export.samples import (
    SampleError,
    SourceLabels,
    assign_split,
    build_source_samples,
    injected_labels,
)
from medgen.workspace import Workspace
from schemas import BenchmarkSample, Candidate, CandidateLabel, GenerationProvenance, SourceImage
from schemas.models import sample_id
from schemas.taxonomy import QUESTION_DIMENSIONS
from tests.conftest import product_photo

# Injected defects per slot A-D for the test sources, cycling; [] = acceptable.
DEFECT_PATTERNS = [
    [[], ["floating"], ["color_shifted", "shadow_missing"], []],
    [["visible_seam"], [], [], ["product_warped"]],
    [[], [], [], []],
    [["scale_wrong"], ["repeated_texture"], ["shadow_direction_wrong"], ["text_garbled"]],
]


def photo_with_exif(seed: int, size: int = 64) -> Image.Image:
    return product_photo(seed, (size, size))


def add_source(workspace: Workspace, seed: int, defects: list[list[str]] | None, size: int = 64) -> str:
    """A source with four candidates in the store and catalog (``defects=None``: no ground truth)."""
    store = workspace.store
    image = product_photo(seed, (size, size))
    source_id = f"src{seed:04d}"
    workspace.catalog.add_source(
        SourceImage(
            id=source_id,
            original_name=f"p{seed}.png",
            image_key=store.put_image(image),
            mask_key=store.put_image(image.convert("L")),
            width=size,
            height=size,
            phash="0" * 16,
            mask_from_alpha=False,
            added_at=datetime.now(timezone.utc),
        )
    )
    candidates = []
    for slot in range(4):
        candidate_image = product_photo(seed * 10 + slot + 1, (size, size))
        candidates.append(
            Candidate(
                id=f"{source_id}-{slot}",
                source_id=source_id,
                slot=slot,
                image_key=store.put_image(candidate_image),
                provenance=GenerationProvenance(
                    backend="synthetic", model_id="synthetic", recipe="background", seed=slot
                ),
                injected_defects=None if defects is None else defects[slot],
            )
        )
    workspace.catalog.add_candidates(candidates)
    return source_id


def populate(workspace: Workspace, n: int, start: int = 0) -> list[str]:
    return [
        add_source(workspace, start + i, DEFECT_PATTERNS[(start + i) % len(DEFECT_PATTERNS)])
        for i in range(n)
    ]


def test_build_source_samples_one_question_per_defective_dimension(workspace: Workspace) -> None:
    source_id = add_source(workspace, 1, DEFECT_PATTERNS[0])
    candidates = workspace.catalog.candidates(source_id)
    samples = build_source_samples(
        source_id, ["s", "a", "b", "c", "d"], candidates, injected_labels(candidates), "v1"
    )
    by_dimension = {s.dimension: s for s in samples}
    # B floats, C has a colour shift and no shadow; A and D are acceptable.
    assert set(by_dimension) == {"appearance_deformation", "lighting_shadow", "placement_layout", "overall"}
    assert by_dimension["placement_layout"].answer == "B"
    assert by_dimension["lighting_shadow"].answer == "C"
    assert by_dimension["overall"].answer == "A,D"
    sample = by_dimension["overall"]
    assert sample.id == sample_id(source_id, "overall")
    assert sample.images == ["s", "a", "b", "c", "d"]
    assert sample.acceptable == [True, False, False, True]
    assert "<answer>A,D</answer>" in sample.completion[0]["content"][0]["text"]
    assert sum(part["type"] == "image" for part in sample.prompt[0]["content"]) == 5


def test_all_defective_source_has_no_overall_question(workspace: Workspace) -> None:
    source_id = add_source(workspace, 3, DEFECT_PATTERNS[3])
    candidates = workspace.catalog.candidates(source_id)
    samples = build_source_samples(
        source_id, ["s", "a", "b", "c", "d"], candidates, injected_labels(candidates), "v1"
    )
    assert "overall" not in {s.dimension for s in samples}
    assert len(samples) == 4


def test_bad_sources_are_reported_with_a_reason(workspace: Workspace) -> None:
    source_id = add_source(workspace, 5, None)
    candidates = workspace.catalog.candidates(source_id)
    with pytest.raises(SampleError, match="no injected ground truth"):
        injected_labels(candidates)
    labels = SourceLabels(labels=(CandidateLabel(acceptable=True),) * 4)
    with pytest.raises(SampleError, match="needs 4 candidates A-D, has A,B,C"):
        build_source_samples(source_id, ["s", "a", "b", "c", "d"], candidates[:3], labels, "v1")
    with pytest.raises(SampleError, match="needs 4 candidate labels"):
        build_source_samples(
            source_id, ["s", "a", "b", "c", "d"], candidates, SourceLabels(labels=labels.labels[:2]), "v1"
        )


def test_split_is_deterministic_and_follows_ratios() -> None:
    ratios = {"train": 0.8, "validation": 0.1, "test": 0.1}
    splits = [assign_split(f"source-{i}", ratios) for i in range(4000)]
    assert splits == [assign_split(f"source-{i}", ratios) for i in range(4000)]
    shares = {name: splits.count(name) / len(splits) for name in ratios}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["test"] - 0.1) < 0.03
    assert {
        assign_split(f"source-{i}", {"train": 1.0, "validation": 0.0, "test": 0.0}) for i in range(50)
    } == {"train"}
    with pytest.raises(ValueError, match="sum to"):
        ExportConfig(version="v1", train=0.5, validation=0.1, test=0.1)
    with pytest.raises(ValueError, match="git tag"):
        ExportConfig(version="../v1")


def test_exif_gps_and_text_are_stripped(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    image = product_photo(7, (48, 48))
    exif = Image.Exif()
    exif[0x010F] = "SecretCamera"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 30.0)}  # GPS latitude
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "patient name")
    image.save(tmp_path / "a.png", exif=exif, pnginfo=info)
    image.save(tmp_path / "a.jpg", exif=exif, quality=90)
    assert b"SecretCamera" in (tmp_path / "a.png").read_bytes()
    for name in ("a.png", "a.jpg"):
        clean = clean_image_bytes(tmp_path / name)
        assert b"SecretCamera" not in clean and b"patient name" not in clean
        decoded = Image.open(io.BytesIO(clean))
        assert not decoded.getexif() and decoded.size == (48, 48)
        if name == "a.png":  # lossless: same pixels
            assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))


def test_export_streams_valid_parquet_that_loads_with_datasets(workspace: Workspace) -> None:
    import datasets

    populate(workspace, 12)
    config = ExportConfig(
        version="v1", labels="injected", train=0.5, validation=0.25, test=0.25, row_group_rows=3
    )
    report = export_dataset(workspace, config)
    folder = workspace.exports_dir / "v1"
    assert report.path == folder and not report.skipped
    # 3 sources per pattern: 4 + 3 + 1 + 4 questions
    assert report.num_samples == 3 * (4 + 3 + 1 + 4)
    shards = sorted((folder / "data").glob("*.parquet"))
    assert {p.name.split("-")[0] for p in shards} == set(report.counts)
    assert all(p.name.endswith("-of-00001.parquet") for p in shards)
    for shard in shards:
        metadata = pq.ParquetFile(shard).metadata
        assert all(metadata.row_group(i).num_rows <= 3 for i in range(metadata.num_row_groups))

    dataset = datasets.load_dataset("parquet", data_dir=str(folder / "data"))
    assert sum(len(split) for split in dataset.values()) == report.num_samples
    row = dataset["train"][0]
    assert len(row["images"]) == 5 and all(isinstance(image, Image.Image) for image in row["images"])
    assert dataset["train"].features["dimension"].names == list(QUESTION_DIMENSIONS)
    assert row["options"] == ["A", "B", "C", "D"]
    # Every row round-trips into the pydantic model.
    for split in dataset.values():
        for item in split.remove_columns("images"):
            item = {**item, "dimension": QUESTION_DIMENSIONS[item["dimension"]], "images": ["x"] * 5}
            BenchmarkSample.model_validate(item)

    from_card = datasets.load_dataset(str(folder))
    assert set(from_card) == set(report.counts)
    assert from_card["train"].num_rows == dataset["train"].num_rows
    loaded = load_export(folder, split="test")
    assert loaded.num_rows == sum(report.counts["test"].values())
    assert load_export(workspace.exports_dir, revision="v1")["train"].num_rows == dataset["train"].num_rows

    # No source in two splits.
    seen: dict[str, str] = {}
    for name, split in dataset.items():
        for source_id in split["source_id"]:
            assert seen.setdefault(source_id, name) == name

    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "license: other" in card and "visual-question-answering" in card
    assert "path: data/train-*" in card and "class_label" in card
    assert "Synthetic ground truth" in card and "synthetic: synthetic" in card
    assert (folder / "samples.png").stat().st_size > 1000
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["num_samples"] == report.num_samples
    assert sum(len(items) for items in manifest["splits"].values()) == report.num_samples
    assert workspace.catalog.count("exports") == 1
    assert not list(workspace.exports_dir.glob(".tmp-*"))


def test_versions_are_immutable_and_changelog_reports_changes(workspace: Workspace) -> None:
    populate(workspace, 8)
    first = export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    with pytest.raises(MedgenError, match="already exists"):
        export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    old_manifest = json.loads((first.path / "manifest.json").read_text())

    populate(workspace, 4, start=100)  # new sources
    relabelled = workspace.catalog.candidates("src0002")[0]  # a clean source gets a defect
    workspace.catalog.conn.execute(
        "UPDATE candidates SET injected_defects = ? WHERE id = ?", (json.dumps(["floating"]), relabelled.id)
    )
    second = export_dataset(workspace, ExportConfig(version="v2", labels="injected"))
    assert second.previous == "v1"
    assert second.changes["added"] == 12 + 1  # 4 new sources (4+3+1+4) + a new placement question
    assert second.changes["removed"] == 0 and second.changes["moved"] == 0
    assert second.changes["changed"] == 1  # src0002's overall question: answer A,B,C,D -> B,C,D
    changelog = (second.path / "changelog.md").read_text()
    assert "Compared with v1" in changelog and sample_id("src0002", "overall") in changelog
    # Adding sources never moves an existing sample between splits.
    new_manifest = json.loads((second.path / "manifest.json").read_text())
    for split, items in old_manifest["splits"].items():
        assert set(items) <= set(new_manifest["splits"][split])


def test_skipped_sources_are_reported_and_failed_export_leaves_nothing(workspace: Workspace) -> None:
    populate(workspace, 3)
    add_source(workspace, 50, None)  # no ground truth
    report = export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    assert report.skipped == {"src0050": "candidate(s) A,B,C,D have no injected ground truth (not synthetic)"}
    assert json.loads(report.report_path.read_text()) == report.skipped

    workspace.catalog.conn.execute("UPDATE candidates SET injected_defects = NULL")
    with pytest.raises(MedgenError, match="no source made a valid sample"):
        export_dataset(workspace, ExportConfig(version="v2", labels="injected"))
    assert not (workspace.exports_dir / "v2").exists() and not list(workspace.exports_dir.glob(".tmp-*"))


def test_a_full_disk_stops_the_export_in_one_line_and_leaves_nothing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, runner
) -> None:
    """Seen at 50k sources: the write and then the writer's close both failed with ENOSPC, two tracebacks."""
    import errno

    import pyarrow.parquet as pq

    from medgen.cli import app

    populate(workspace, 3)
    full = OSError(errno.ENOSPC, "No space left on device")

    def no_space(*args, **kwargs):
        raise full

    monkeypatch.setattr(pq.ParquetWriter, "write_table", no_space)
    monkeypatch.setattr(pq.ParquetWriter, "close", no_space)
    result = runner.invoke(
        app, ["export", "-w", str(workspace.root), "--version", "v1", "--labels", "injected"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "export v1 stopped, nothing kept: the disk under" in " ".join(result.output.split())
    assert not list(workspace.exports_dir.glob(".tmp-*")) and not (workspace.exports_dir / "v1").exists()
    assert not workspace.catalog.query("SELECT version FROM exports")


def test_export_recovers_from_a_crash(workspace: Workspace) -> None:
    populate(workspace, 2)
    leftover = workspace.exports_dir / ".tmp-v1-deadbeef" / "data"
    leftover.mkdir(parents=True)
    (leftover / "train-00000.parquet.partial").write_bytes(b"half a file")
    export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    assert not list(workspace.exports_dir.glob(".tmp-*"))
    # Killed after the rename, before the catalog row: the rerun records the version and refuses it.
    workspace.catalog.conn.execute("DELETE FROM exports")
    with pytest.raises(MedgenError, match="already exists"):
        export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    assert [row["version"] for row in workspace.catalog.query("SELECT version FROM exports")] == ["v1"]


def test_export_from_consensus_labels(workspace: Workspace) -> None:
    """Real annotation rows in the catalog, through ``annotation.consensus.consensus_labels``."""
    from annotation.consensus import labels_to_json

    sources = populate(workspace, 3)
    floating = CandidateLabel(defects=("floating",), acceptable=False, rationale="hovers")
    ok = CandidateLabel(acceptable=True)
    votes = {
        sources[0]: {
            "ann1": (floating, ok, ok, ok),
            "ann2": (floating, ok, ok, ok),
            "ann3": (ok, ok, ok, ok),
        },
        sources[1]: {"ann1": (floating, ok, ok, ok), "ann2": (ok, ok, ok, ok)},  # a tie: unresolved
    }
    with workspace.catalog.transaction() as conn:
        for project, annotator in enumerate(("ann1", "ann2", "ann3"), start=1):
            conn.execute(
                "INSERT INTO ls_projects (ls_project_id, kind, annotator, title, created_at) VALUES (?, 'annotator', ?, ?, 'now')",
                (project, annotator, annotator),
            )
        row_id = 0
        for source_id, by_annotator in votes.items():
            for annotator, labels in by_annotator.items():
                row_id += 1
                project = int(annotator[-1])
                conn.execute(
                    "INSERT INTO annotations (ls_annotation_id, ls_task_id, ls_project_id, annotator, source_id, "
                    "status, reasons, labels, lead_time_s, pulled_at) "
                    "VALUES (?, ?, ?, ?, ?, 'valid', '[]', ?, 10, 'now')",
                    (row_id, row_id, project, annotator, source_id, labels_to_json(labels)),
                )
    report = export_dataset(workspace, ExportConfig(version="v1", simulated_annotators=True))
    assert report.num_samples == 2  # placement_layout (A) and overall (B,C,D)
    assert report.skipped == {
        sources[1]: "unresolved annotations: tie on whether A is acceptable (1 of 2)",
        sources[2]: "not annotated yet",
    }
    rows = load_export(report.path)
    all_rows = [row for split in rows.values() for row in split.remove_columns("images")]
    placement = next(r for r in all_rows if r["dimension"] == QUESTION_DIMENSIONS.index("placement_layout"))
    assert (
        placement["answer"] == "A" and placement["num_annotators"] == 3 and "hovers" in placement["rationale"]
    )
    assert placement["agreement"] == pytest.approx(11 / 12)
    card = (report.path / "README.md").read_text()
    assert "Simulated annotators" in card and "mean agreement with consensus: 0.917" in card
    assert "3 annotators: 1 source" in card
    # By hand over the 8 candidates both sources' annotators saw: Do = 4/20, De = 2*3*17/(20*19), alpha = 0.255;
    # no one tagged an appearance defect, so there alpha is undefined.
    assert "placement_layout 0.255" in card and "appearance_deformation n/a" in card


def test_export_cli(workspace: Workspace, runner) -> None:
    populate(workspace, 4)
    args = ["export", "--version", "v1", "--labels", "injected", "-w", str(workspace.root)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 samples" in result.output and "v1" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    bad = runner.invoke(app, ["export", "--version", "v2", "--split", "0.5,0.5", "-w", str(workspace.root)])
    assert bad.exit_code == 1 and "--split" in bad.output


@pytest.mark.slow
def test_export_trains_as_is_with_trl_sft(workspace: Workspace, tmp_path: Path) -> None:
    """TRL's own SFTTrainer takes the export's prompt/completion/images columns without any mapping."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
    from trl import SFTConfig, SFTTrainer

    from training.tiny import build_tiny_vlm

    populate(workspace, 4)
    report = export_dataset(
        workspace, ExportConfig(version="v1", labels="injected", train=1.0, validation=0.0, test=0.0)
    )
    train = load_export(report.path, split="train")
    model_dir = build_tiny_vlm(tmp_path / "tiny")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir)
    before = [p.detach().clone() for p in model.parameters()]
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        max_length=None,
        use_cpu=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=AutoProcessor.from_pretrained(model_dir)
    )
    trainer.train()
    assert trainer.state.global_step == 1
    assert any(
        not np.allclose(a.numpy(), b.detach().numpy())
        for a, b in zip(before, model.parameters(), strict=True)
    )


def test_synthetic_regions_reach_the_export_and_the_card(workspace: Workspace) -> None:
    """`generate --backend synthetic` records where each defect is; `export --labels injected` writes them per
    question (its dimension's; all for overall) and the card draws them and counts them."""
    from medgen.generation.config import GenerationConfig
    from medgen.generation.generate import generate
    from medgen.sources.ingest import add_sources
    from medgen.sources.samples import write_samples
    from schemas.regions import region_kinds
    from schemas.taxonomy import tag_dimensions

    write_samples(workspace.root / "photos", 8, seed=3)
    add_sources(workspace, [workspace.root / "photos"])
    generate(workspace, GenerationConfig(backend="synthetic"))
    report = export_dataset(workspace, ExportConfig(version="v1", labels="injected"))
    rows = [
        row
        for split in ("train", "validation", "test")
        if split in report.counts
        for row in load_export(report.path, split)
    ]
    dimensions = QUESTION_DIMENSIONS
    regions = 0
    for row in rows:
        dimension = dimensions[row["dimension"]]
        for tags, found in zip(row["defects"], row["regions"], strict=True):
            asked = [t for t in tags if dimension == "overall" or tag_dimensions()[t] == dimension]
            assert sorted(r["tag"] for r in found) == sorted(
                t for t in asked if region_kinds()[t] is not None
            )
            for region in found:
                x0, y0, x1, y1 = region["box"]
                assert (
                    0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1 and (region["agreed"], region["of"]) == (1, 1)
                )
            regions += len(found)
    assert regions > 0
    card = (report.path / "README.md").read_text()
    assert "## Defect regions" in card and "regions` column" in card
    assert (report.path / "samples.png").stat().st_size > 10_000
