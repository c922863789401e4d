"""Evaluation outputs: results.json, a Markdown table laid out like the paper's, a bar chart, predictions.

Table rows are models; columns are the four dimensions, the 'acceptable to publish' question when the
split has it, and Overall = exact-match accuracy over all questions (the paper's metric), in percent.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from medgen.errors import MedgenError, one_line
from medgen.files import atomic_write_bytes, atomic_write_text
from schemas.taxonomy import OVERALL, TAXONOMY
from training.evaluation.metrics import (
    ALL,
    DIMENSIONS,
    EvalResults,
    ModelResult,
    Prediction,
    prediction_record,
)

COLUMN_LABELS: dict[str, str] = {
    **{d.id: d.label for d in TAXONOMY.dimensions},
    DIMENSIONS: "Overall (4 dimensions)",
    OVERALL: "Publishable",
    ALL: "All questions",
}


def columns(models: Sequence[ModelResult]) -> list[str]:
    """Cells shown: the four dimensions, Overall (4 dimensions), then Publishable and All when scored."""
    shown = [*(d.id for d in TAXONOMY.dimensions), DIMENSIONS]
    if any(m.scores.get(OVERALL) and m.scores[OVERALL].n for m in models):
        shown += [OVERALL, ALL]
    return shown


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def accuracy_cell(model: ModelResult, cell: str) -> str:
    score = model.scores.get(cell)
    if score is None or not score.n:
        return "–"
    text = percent(score.accuracy)
    if score.accuracy_ci95:
        low, high = score.accuracy_ci95
        text += f" [{percent(low)}, {percent(high)}]"
    return text


def count_cell(model: ModelResult, cell: str) -> str:
    score = model.scores.get(cell)
    if score is None or not score.n or score.dpa is None:
        return "0"
    return f"{score.n} (DPA {score.dpa:.3f})"


def _cell_table(
    models: Sequence[ModelResult], shown: Sequence[str], cell: Callable[[ModelResult, str], str]
) -> list[str]:
    """A Markdown table: a row per model, a column per shown cell, each entry ``cell(model, column)``."""
    lines = ["| Model | " + " | ".join(COLUMN_LABELS[c] for c in shown) + " |"]
    lines.append("| --- | " + " | ".join("---:" for _ in shown) + " |")
    lines += [f"| {m.name} | " + " | ".join(cell(m, c) for c in shown) + " |" for m in models]
    return lines


def markdown(title: str, models: Sequence[ModelResult], notes: Sequence[str] = ()) -> str:
    """The accuracy table (rows = models), a details table over all questions, then notes."""
    shown = columns(models)
    lines = [f"# {title}", ""]
    lines += [
        "Exact-match accuracy (%) with a bootstrap 95% CI (resampling sources). **Overall (4 dimensions)** is "
        "the headline: accuracy over the four dimensions' questions, the paper's definition. Publishable "
        "(which candidates can be published) is reported beside it; All questions includes it.",
        "",
    ]
    lines += _cell_table(models, shown, accuracy_cell)
    lines += [
        "",
        "Questions per cell (n; for the human baseline, annotator-question pairs) and mean DPA score (λ=1):",
        "",
    ]
    lines += _cell_table(models, shown, count_cell)
    lines += ["", "Over the four dimensions' questions (the headline):", ""]
    lines.append(
        "| Model | Kind | n | Accuracy (%) | DPA score (λ=1) | Format compliance (%) | Parse failures |"
    )
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for model in models:
        s = model.scores.get(DIMENSIONS) or model.scores[ALL]  # results from before the headline existed
        dpa = "–" if s.dpa is None else f"{s.dpa:.4f}"
        lines.append(
            f"| {model.name} | {model.kind} | {s.n} | {percent(s.accuracy)} | {dpa} | {percent(s.format_rate)} | {s.parse_failures} |"
        )
    lines += localisation_lines(models)
    notes = [*notes, *model_notes(models)]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def localisation_lines(models: Sequence[ModelResult]) -> list[str]:
    """Where the split has regions: per dimension, the share of answered candidates with a true region that the
    model's named box finds at IoU 0.5, and that its box centre points at (none: no lines)."""
    located = [m for m in models if (m.scores.get(DIMENSIONS) or m.scores[ALL]).located_n]
    if not located:
        return []
    dims = (*(d.id for d in TAXONOMY.dimensions), DIMENSIONS)
    shown = [d for d in dims if any(d in m.scores and m.scores[d].located_n for m in located)]

    def cell(model: ModelResult, column: str) -> str:
        s = model.scores.get(column)
        if s is None or not s.located_n:
            return "–"
        return f"{percent(s.box_hit_rate)} / {percent(s.pointing)} (n={s.located_n})"

    return [
        "",
        "Localisation: of the answered candidates with a true region, the share a named box finds (hit at IoU "
        "0.5) / the share its centre points at (%); a candidate without a named box counts as missed:",
        "",
        *_cell_table(located, shown, cell),
    ]


def model_notes(models: Sequence[ModelResult]) -> list[str]:
    notes = []
    for model in models:
        s = model.scores[ALL]
        if model.kind == "random" and s.expected_accuracy is not None:
            dpa = f"{s.expected_dpa:.4f}" if s.expected_dpa is not None else "–"
            notes.append(
                f"{model.name}: uniform over the 15 non-empty answer sets; expected accuracy exactly "
                f"1/15 = {percent(s.expected_accuracy)}%, expected DPA {dpa}."
            )
        elif model.kind == "majority":
            notes.append(
                f"{model.name}: most frequent answer per dimension, learned from the {model.details.get('learned_from')}."
            )
        elif model.kind == "human":
            d = model.details
            notes.append(
                f"{model.name}: one annotator's answer vs the {d.get('reference')}; {d.get('annotators')} annotators, "
                f"{d.get('questions_covered')} of {d.get('questions_total')} questions covered; n counts annotator-question pairs."
            )
    return notes


def tick_label(text: str) -> str:
    return text.replace(" and ", " &\n") if " and " in text else text.replace(" ", "\n", 1)


def bar_chart(models: Sequence[ModelResult], path: Path, title: str) -> None:
    """Grouped bars: accuracy per column, one bar per model, CI whiskers. Rendered without a display."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = columns(models)
    figure = Figure(figsize=(max(8.0, 0.35 * len(shown) * max(2, len(models)) + 3), 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = np.arange(len(shown))
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        cells = [model.scores.get(c) for c in shown]
        heights = [100 * s.accuracy if s and s.accuracy is not None else 0.0 for s in cells]
        errors = np.array(
            [
                [100 * (s.accuracy - s.accuracy_ci95[0]), 100 * (s.accuracy_ci95[1] - s.accuracy)]
                if s and s.accuracy is not None and s.accuracy_ci95
                else [0.0, 0.0]
                for s in cells
            ]
        ).T
        axes.bar(
            x + (i - (len(models) - 1) / 2) * width, heights, width, yerr=errors, capsize=2, label=model.name
        )
    if any(m.kind == "random" for m in models):
        axes.axhline(100 / 15, color="grey", linestyle="--", linewidth=1, label="random, expected (1/15)")
    axes.set_xticks(x, [tick_label(COLUMN_LABELS[c]) for c in shown], fontsize=8)
    axes.set_ylabel("exact-match accuracy (%)")
    axes.set_ylim(0, 105)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def title_of(results: EvalResults) -> str:
    revision = f"@{results.revision}" if results.revision else ""
    return (
        f"medgen eval: {results.dataset}{revision}, split {results.split} ({results.num_questions} questions)"
    )


def write_report(results: EvalResults, output_dir: Path) -> None:
    """results.json, results.md and results.png in ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "results.json", results.model_dump_json(indent=2) + "\n")
    atomic_write_text(output_dir / "results.md", markdown(title_of(results), results.models))
    bar_chart(results.models, output_dir / "results.png", title_of(results))


def write_predictions(predictions: Sequence[Prediction], path: Path) -> None:
    """One JSON line per (model, question): id, dimension, gold, raw output, parsed, correct, dpa."""
    atomic_write_text(path, "".join(json.dumps(prediction_record(p)) + "\n" for p in predictions))


def load_results(path: Path) -> EvalResults:
    try:
        return EvalResults.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise MedgenError(f"{path} does not exist: pass the results.json written by `medgen eval`") from None
    except ValueError as error:
        raise MedgenError(f"{path} is not a medgen eval results.json ({one_line(error)})") from None


def compare_runs(paths: Sequence[Path], output_dir: Path) -> list[ModelResult]:
    """Several runs side by side: comparison.md and comparison.png in ``output_dir``; returns the rows.

    A row repeated with identical scores (the same baseline on the same data) is shown once; rows that
    share a name but differ are suffixed with their run's folder name.
    """
    if len(paths) < 2:
        raise MedgenError("--compare needs at least two results.json files")
    runs = [(path, load_results(path)) for path in paths]
    rows: list[ModelResult] = []
    for path, results in runs:
        for model in results.models:
            if any(row.name == model.name and row.scores == model.scores for row in rows):
                continue
            if any(row.name == model.name for row in rows) or any(
                m.name == model.name and m.scores != model.scores
                for _, other in runs
                if other is not results
                for m in other.models
            ):
                model = model.model_copy(update={"name": f"{model.name} ({path.parent.name or path.stem})"})
            rows.append(model)
    data = sorted(
        {
            f"{r.dataset}{'@' + r.revision if r.revision else ''} split {r.split} ({r.num_questions} questions)"
            for _, r in runs
        }
    )
    notes = [f"runs: {', '.join(str(p) for p in paths)}"]
    if len(data) > 1:
        notes.append(
            "WARNING: the runs scored different data, so their rows are not directly comparable: "
            + "; ".join(data)
        )
    title = f"medgen eval comparison: {data[0]}" if len(data) == 1 else "medgen eval comparison"
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "comparison.md", markdown(title, rows, notes))
    bar_chart(rows, output_dir / "comparison.png", title)
    return rows
