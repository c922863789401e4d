"""The dataset card of an export: YAML metadata for the Hub, statistics, and a figure of a few samples."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medgen.export.config import ExportConfig
from medgen.export.layout import SPLITS
from schemas import BenchmarkSample
from schemas.regions import Region
from schemas.taxonomy import LETTERS, OVERALL, QUESTION_DIMENSIONS, TAXONOMY

if TYPE_CHECKING:
    import datasets

FIGURE = "samples.png"
FIGURE_SAMPLES = 3
FigureSample = tuple[str, str, list[bytes], list[list[Region]]]  # dimension, answer, images, regions


@dataclass
class CardStats:
    """Statistics gathered while samples stream past; constant memory apart from a few figure samples."""

    config: ExportConfig
    simulated: bool = False
    alpha: dict[str, float | None] = field(default_factory=dict)  # Krippendorff's alpha per dimension
    num_samples: int = 0
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    answer_sizes: dict[str, Counter[int]] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)
    agreement_sum: float = 0.0
    agreement_min: float = 1.0
    annotators: Counter[int] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    recipes: Counter[str] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)  # candidates carrying each defect tag
    skipped: Counter[str] = field(default_factory=Counter)
    rationales: Counter[str] = field(default_factory=Counter)  # samples per rationale origin
    teachers: Counter[str] = field(default_factory=Counter)  # samples per teacher model
    figure: list[FigureSample] = field(default_factory=list)
    region_figure: list[FigureSample] = field(default_factory=list)  # the first questions that have regions
    regions: Counter[str] = field(default_factory=Counter)  # consensus regions per tag (overall questions)
    region_agreement: list[float] = field(default_factory=list)  # agreed / of per region of several people
    _last_source: str = ""

    def add(self, split: str, sample: BenchmarkSample, images: list[bytes]) -> None:
        self.num_samples += 1
        self.counts.setdefault(split, Counter())[sample.dimension] += 1
        self.answer_sizes.setdefault(sample.dimension, Counter())[len(sample.answer.split(","))] += 1
        if sample.source_id != self._last_source:
            self._last_source = sample.source_id
            self.sources[split] += 1
            self.agreement_sum += sample.agreement
            self.agreement_min = min(self.agreement_min, sample.agreement)
            self.annotators[sample.num_annotators] += 1
            self.tags.update(tag for defects in sample.defects for tag in defects)
            for provenance in sample.generation:
                revision = f"@{provenance.model_revision[:12]}" if provenance.model_revision else ""
                self.models[f"{provenance.backend}: {provenance.model_id}{revision}"] += 1
                self.recipes[provenance.recipe] += 1
            if len(self.figure) < FIGURE_SAMPLES:  # the first question of the first few sources
                self.figure.append((sample.dimension, sample.answer, list(images), sample.regions))
        if any(sample.regions):
            if len(self.region_figure) < FIGURE_SAMPLES and (
                not self.region_figure or self.region_figure[-1][2] != images
            ):
                self.region_figure.append((sample.dimension, sample.answer, list(images), sample.regions))
            if sample.dimension == OVERALL or not sample.acceptable.count(True):  # each region counted once
                regions = [region for candidate in sample.regions for region in candidate]
                self.regions.update(region.tag for region in regions)
                self.region_agreement += [region.agreed / region.of for region in regions if region.of > 1]

    def rationale(self, origin: str, teacher: str | None = None) -> None:
        self.rationales[origin] += 1
        if teacher:
            self.teachers[teacher] += 1

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def counts_by_split(self) -> dict[str, dict[str, int]]:
        return {split: dict(sorted(self.counts[split].items())) for split in SPLITS if split in self.counts}


def _figure_png(samples: list[FigureSample]) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.patches import Circle, Rectangle
    from PIL import Image

    rows = max(1, len(samples))
    fig = Figure(figsize=(2.2 * (1 + len(LETTERS)), 2.5 * rows))
    axes = fig.subplots(rows, 1 + len(LETTERS), squeeze=False)
    for row, (dimension, answer, images, regions) in enumerate(samples):
        for col, data in enumerate(images):
            ax = axes[row][col]
            with Image.open(io.BytesIO(data)) as image:
                image.thumbnail((192, 192))
                ax.imshow(image.convert("RGB"))
                w, h = image.size
            ax.set_title("source" if col == 0 else LETTERS[col - 1], fontsize=9)
            for region in regions[col - 1] if col else []:  # consensus regions, in the image's pixels
                x0, y0, x1, y1 = region.box[0] * w, region.box[1] * h, region.box[2] * w, region.box[3] * h
                shape = (
                    Circle((x0, y0), 4, fill=False, color="red", lw=2)
                    if region.is_point
                    else Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="red", lw=2)
                )
                ax.add_patch(shape)
                ax.text(x0, y0, region.tag, color="white", fontsize=6, va="bottom", backgroundcolor="red")
        axes[row][0].set_ylabel(f"{dimension}\nanswer {answer}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _size_category(n: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return name
    return "n>1M"


def _metadata(stats: CardStats, features: datasets.Features, shards: dict[str, list[Path]]) -> str:
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        license=stats.config.license,
        task_categories=["visual-question-answering", "image-text-to-text"],
        language=["en"],
        tags=["medical", "e-commerce", "image-generation", "aesthetics", "multiple-choice", "medgen"],
        pretty_name=stats.config.pretty_name,
        size_categories=[_size_category(stats.num_samples)],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"data/{split}-*"} for split in shards],
            }
        ],
    )
    splits = SplitDict()
    for split, paths in shards.items():
        splits.add(
            SplitInfo(
                name=split,
                num_bytes=sum(p.stat().st_size for p in paths),
                num_examples=sum(stats.counts[split].values()),
            )
        )
    info = DatasetInfo(features=features, splits=splits)
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return card_data.to_yaml()


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


_ORIGINS = {
    "template": "written from the defect tags (a finding per candidate, then the conclusion)",
    "annotator": "written from the defect tags, with the annotators' own notes where they wrote one",
    "teacher": "answer-driven: a teacher model explained the known answer (`medgen cot`), validated",
}


def _reasoning_lines(stats: CardStats) -> list[str]:
    lines = [
        f"- {count} samples: {_ORIGINS.get(origin, origin)}"
        for origin, count in stats.rationales.most_common()
    ]
    if stats.teachers:
        lines.append(
            "- teacher model(s): "
            + ", ".join(f"`{name}` ({count})" for name, count in stats.teachers.most_common())
        )
    if stats.config.rationale == "teacher" and stats.rationales.get("annotator"):
        lines.append(
            f"- {stats.rationales['annotator']} samples had no accepted teacher rationale for their current answer"
        )
    return lines


def card_markdown(stats: CardStats, changes: dict[str, int], previous: str | None, skipped: int) -> str:
    """The card's body: what the dataset is, its statistics and provenance."""
    lines = [
        *_introduction(stats),
        *_sizes(stats),
        *_labels(stats),
        *_provenance(stats),
        *_version(stats, changes, previous, skipped),
    ]
    return "\n".join(lines)


def _introduction(stats: CardStats) -> list[str]:
    """Title, warnings about where the labels come from, what a sample is, how to load it."""
    config = stats.config
    lines = [f"# {config.pretty_name} ({config.version})", ""]
    if stats.simulated:
        lines += [
            "> **Simulated annotators.** The labels of this version come from simulated annotators, not from "
            "people: use it to test pipelines, not to measure models.",
            "",
        ]
    if config.labels == "injected":
        lines += [
            "> **Synthetic ground truth.** Labels are the defects the synthetic generator injected on purpose, "
            "not human annotations.",
            "",
        ]
    return lines + [
        "Screening AI-generated medicine-product images (after arXiv 2505.23265). Each sample shows the original "
        "product photo and four images generated from it (A-D), and asks which generated images are unreasonable "
        "along one dimension, or which are acceptable to publish (`overall`). The answer is the sorted, "
        "comma-joined set of letters (`A,C`).",
        "",
        "![samples](" + FIGURE + ")",
        "",
        "## Usage",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("ORG/NAME", revision="' + config.version + '")  # or a local export folder',
        'ds["train"][0]["images"]  # 5 PIL images: source, A, B, C, D',
        "```",
        "",
        "The `prompt` / `completion` columns are TRL conversational turns (one image placeholder per image), so "
        "`trl sft` and `trl grpo` train on this dataset as it is.",
        "",
    ]


def _sizes(stats: CardStats) -> list[str]:
    """Samples per split and dimension, and how many letters the answers hold."""
    num_sources = sum(stats.sources.values())
    splits = list(stats.counts_by_split())
    lines = [f"## Samples per split and dimension ({stats.num_samples} samples, {num_sources} sources)", ""]
    rows = [[d, *(stats.counts[s].get(d, 0) for s in splits)] for d in QUESTION_DIMENSIONS]
    rows.append(["**total**", *(sum(stats.counts[s].values()) for s in splits)])
    rows.append(["sources", *(stats.sources[s] for s in splits)])
    lines += _table(["dimension", *splits], rows)
    lines += ["", "## Answer size (letters per answer)", ""]
    sizes = range(1, len(LETTERS) + 1)
    lines += _table(
        ["dimension", *(str(k) for k in sizes)],
        [[d, *(stats.answer_sizes.get(d, Counter()).get(k, 0) for k in sizes)] for d in QUESTION_DIMENSIONS],
    )
    return lines


def _labels(stats: CardStats) -> list[str]:
    """Where the labels come from, how well annotators agreed, how often each defect tag was given."""
    config = stats.config
    num_sources = sum(stats.sources.values())
    mean_agreement = stats.agreement_sum / num_sources if num_sources else 0.0
    annotators = ", ".join(
        f"{n} annotators: {count} source{'s' if count != 1 else ''}"
        for n, count in sorted(stats.annotators.items())
    )
    alpha = ", ".join(f"{k} {_alpha(v)}" for k, v in stats.alpha.items())
    lines = [
        "",
        "## Labels and agreement",
        "",
        f"- labels: {config.labels}"
        + (" (synthetic ground truth)" if config.labels == "injected" else " (majority vote)"),
        f"- mean agreement with consensus: {mean_agreement:.3f} (lowest {stats.agreement_min:.3f})",
        f"- {annotators}",
        *([f"- Krippendorff's alpha (nominal): {alpha}"] if stats.alpha else []),
        "",
        "## Defect tags (candidates carrying each)",
        "",
    ]
    lines += _table(
        ["dimension", "tag", "candidates"],
        [[d.id, tag.id, stats.tags.get(tag.id, 0)] for d in TAXONOMY.dimensions for tag in d.tags],
    )
    return lines + [
        "",
        "Each dimension's `*_other` tag is a defect no other tag names; the annotator described it in words, "
        "kept in the `rationale` column.",
        "",
        *_regions(stats),
    ]


def _regions(stats: CardStats) -> list[str]:
    """Where the defects are: regions per tag and how far annotators agreed on them (none: no lines)."""
    if not stats.regions:
        return []
    agreement = stats.region_agreement
    lines = [
        "## Defect regions",
        "",
        f"{sum(stats.regions.values())} regions (the red boxes in the figure above). The `regions` column holds, "
        "per candidate, the regions of the question's dimension (all of them for `overall`): the tag, the box "
        "`[x0, y0, x1, y1]` in fractions of the image (a point when x0 = x1 and y0 = y1), and `agreed` of `of` "
        "annotators who marked that tag there (regions merged by IoU >= 0.5, the box the median).",
        "",
    ]
    if agreement:
        lines += [
            f"Regions marked by several annotators: {len(agreement)}; mean share agreeing "
            f"{sum(agreement) / len(agreement):.2f}.",
            "",
        ]
    return lines + _table(["tag", "regions"], [[tag, n] for tag, n in sorted(stats.regions.items())]) + [""]


def _provenance(stats: CardStats) -> list[str]:
    """Where the reasoning and the images come from."""
    lines = [
        "## Reasoning (the `rationale` column and the completion's <think>)",
        "",
        *_reasoning_lines(stats),
        "",
        "## Generation models",
        "",
    ]
    lines += _table(
        ["backend: model", "candidates"], [[name, count] for name, count in stats.models.most_common()]
    )
    return lines + [
        "",
        "Recipes: " + ", ".join(f"{name} ({count})" for name, count in stats.recipes.most_common()),
        "",
    ]


def _version(stats: CardStats, changes: dict[str, int], previous: str | None, skipped: int) -> list[str]:
    """How splits are assigned, what changed since the previous version, what made no sample."""
    ratios = ", ".join(f"{name} {ratio:g}" for name, ratio in stats.config.ratios.items())
    lines = [
        "## Version",
        "",
        f"Splits are assigned per source from a hash of its id ({ratios}): adding sources never moves a sample.",
    ]
    if previous:
        lines.append(
            f"Changes since {previous}: {changes['added']} added, {changes['removed']} removed, "
            f"{changes['changed']} changed (see `changelog.md`)."
        )
    else:
        lines.append("First version.")
    if skipped:
        lines += ["", f"{skipped} source(s) made no sample:"]
        lines += [f"- {reason}: {count}" for reason, count in stats.skipped.most_common(10)]
    return lines + ["", "Images are embedded without EXIF, GPS or text metadata. Built with medgen.", ""]


def _alpha(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_card(
    folder: Path,
    stats: CardStats,
    features: datasets.Features,
    shards: dict[str, list[Path]],
    changes: dict[str, int],
    previous: str | None,
    skipped: int,
) -> Path:
    """Write ``README.md`` (YAML metadata + body) and the figure into the export folder."""
    (folder / FIGURE).write_bytes(_figure_png(stats.region_figure or stats.figure))
    text = f"---\n{_metadata(stats, features, shards)}\n---\n\n{card_markdown(stats, changes, previous, skipped)}"
    path = folder / "README.md"
    path.write_text(text)
    return path
