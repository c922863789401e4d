"""The annotation quality report as a page a lead opens in a browser: ``index.html`` with its plots embedded
(one file to share), beside ``report.json`` with the same numbers (``annotation.report``)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from annotation.options import DEFAULT_MIN_AGREEMENT
from annotation.report import PARTS, report_numbers
from medgen.files import atomic_write_text
from medgen.workspace import Workspace
from schemas import TAXONOMY

TITLES = {d.id: d.label for d in TAXONOMY.dimensions} | {"acceptable": "Acceptable (no defects)"}
TAGS = {tag.id: tag.label for d in TAXONOMY.dimensions for tag in d.tags}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1180px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; } td, th { padding: 3px 9px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; } figure { margin: 8px 0 20px; } img { max-width: 100%; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
"""


def _png(figure: Any) -> str:
    """A matplotlib figure as an embedded PNG (``data:`` URI), closed after."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def plot_people(numbers: dict[str, Any]) -> dict[str, str]:
    """Time per task (median and quartiles) and gold accuracy with its interval, per annotator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    people = numbers["annotators"]
    names = list(people)
    figures = {}
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * max(1, len(names))))
    for i, name in enumerate(names):
        t = people[name]["lead_time_s"]
        if t["median"] is not None:
            ax.plot([t["q1"], t["q3"]], [i, i], color="#4a7bb7", linewidth=6, solid_capstyle="butt")
            ax.plot([t["median"]], [i], "k|", markersize=14)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("seconds per task (median, quartiles)")
    ax.invert_yaxis()
    figures["time"] = _png(fig)
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * max(1, len(names))))
    for i, name in enumerate(names):
        g = people[name]["gold"]
        if g["accuracy"] is not None:
            ax.errorbar(
                [100 * g["accuracy"]],
                [i],
                xerr=[[100 * (g["accuracy"] - g["ci_low"])], [100 * (g["ci_high"] - g["accuracy"])]],
                fmt="o",
                color="#2e7d32",
                capsize=4,
            )
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("gold accuracy per candidate, % (95 % interval)")
    ax.invert_yaxis()
    figures["gold"] = _png(fig)
    return figures


def plot_dimensions(numbers: dict[str, Any]) -> dict[str, str]:
    """Alpha over time per dimension, and each dimension's pairwise agreement as a heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = numbers["dimensions"]
    figures = {}
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for part in PARTS:
        drift = dims[part]["alpha_over_time"]
        ax.plot(range(1, len(drift) + 1), [w["alpha"] for w in drift], marker="o", label=TITLES[part])
    ax.axhline(0.667, color="#999", linestyle="--", linewidth=1)
    ax.set_xlabel("window of sources, in the order they were first answered")
    ax.set_ylabel("Krippendorff's alpha")
    ax.legend(fontsize=8, loc="lower left")
    figures["drift"] = _png(fig)
    for part in PARTS:
        pairwise = dims[part]["pairwise"]
        names = pairwise["annotators"]
        if len(names) < 2:
            continue
        values = [[float("nan") if v is None else 100 * v for v in row] for row in pairwise["agreement"]]
        fig, ax = plt.subplots(figsize=(1.4 + 0.55 * len(names), 1.0 + 0.5 * len(names)))
        image = ax.imshow(values, vmin=50, vmax=100, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        for a in range(len(names)):
            for b in range(len(names)):
                if values[a][b] == values[a][b]:
                    ax.text(b, a, f"{values[a][b]:.0f}", ha="center", va="center", color="white", fontsize=8)
        fig.colorbar(image, ax=ax, label="% candidates agreeing")
        ax.set_title(TITLES[part], fontsize=10)
        figures[f"pairs_{part}"] = _png(fig)
    return figures


def _people_table(numbers: dict[str, Any]) -> str:
    head = (
        "<tr><th>annotator</th><th>answers</th><th>valid</th><th>skipped</th><th>unusable</th><th>rejected</th>"
        "<th>seconds / task: median (IQR)</th><th>gold accuracy (95 % CI, n candidates)</th>"
        "<th>review acceptance (n)</th><th>pre-fill kept (n)</th>"
        "<th>gold regions found, IoU 0.5 (marked of n)</th></tr>"
    )
    rows = []
    for name, p in numbers["annotators"].items():
        t, g, r = p["lead_time_s"], p["gold"], p["review"]
        decided = r["accepted"] + r["rejected"]
        rows.append(
            f"<tr><td>{html.escape(name)}</td>"
            + "".join(
                f'<td class="n">{p[k]}</td>' for k in ("answers", "valid", "skipped", "unusable", "rejected")
            )
            + f'<td class="n">{_num(t["median"], 1)} ({_num(t["q1"], 1)}–{_num(t["q3"], 1)}), n {t["n"]}</td>'
            + f'<td class="n">{_pct(g["accuracy"], 1)} ({_pct(g["ci_low"])}–{_pct(g["ci_high"])}), n {g["candidates"]}</td>'
            + f'<td class="n">{_pct(r["acceptance"])} (n {decided}; {r["waiting"]} waiting)</td>'
            + f'<td class="n">{_pct(p["prefill"]["kept"])} (n {p["prefill"]["n"]})</td>'
            + f'<td class="n">{_regions_cell(p.get("gold_regions") or {})}</td></tr>'
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _regions_cell(regions: dict[str, Any]) -> str:
    """Where they put the defects on gold tasks (their regions of tags they got right): found share, marked of n."""
    if not regions.get("n"):
        return "–"
    low, high = regions["ci"]
    return f"{_pct(regions['hit_rate'])} ({_pct(low)}–{_pct(high)}; {regions['marked']} of {regions['n']})"


def _consensus_table(numbers: dict[str, Any]) -> str:
    head = (
        "<tr><th>annotator</th>"
        + "".join(f"<th>{html.escape(TITLES[p])}</th>" for p in PARTS)
        + "<th>n candidates</th></tr>"
    )
    rows = []
    for name, p in numbers["annotators"].items():
        cells = p["agreement_with_consensus"]
        rows.append(
            f"<tr><td>{html.escape(name)}</td>"
            + "".join(f'<td class="n">{_pct(cells[part]["rate"], 1)}</td>' for part in PARTS)
            + f'<td class="n">{cells[PARTS[0]]["n"]}</td></tr>'
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _dimension_section(numbers: dict[str, Any], plots: dict[str, str]) -> str:
    parts = [
        "<table><tr><th>dimension</th><th>alpha</th><th>units</th><th>most confused tags (count)</th></tr>"
    ]
    for part in PARTS:
        d = numbers["dimensions"][part]
        confused = ", ".join(
            f"{html.escape(' vs '.join(TAGS.get(t, t) for t in c['tags']))} ({c['count']})"
            for c in d["confused"][:4]
        )
        parts.append(
            f"<tr><td>{html.escape(TITLES[part])}</td><td class='n'>{_num(d['alpha'], 3)}</td>"
            f"<td class='n'>{d['units']}</td><td>{confused or '<span class=muted>none</span>'}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        f'<figure><img src="{plots["drift"]}" alt="alpha over time"><figcaption class="muted">Alpha per '
        "window of sources answered by two or more people, oldest first; the dashed line is 0.667, the "
        "usual floor for tentative conclusions.</figcaption></figure>"
    )
    heat = [
        f'<img src="{plots[k]}" alt="pairwise agreement: {html.escape(k[6:])}">'
        for k in plots
        if k.startswith("pairs_")
    ]
    if heat:
        parts.append(
            '<h3>Agreement between each pair of annotators</h3><div class="grid">' + "".join(heat) + "</div>"
        )
    return "".join(parts)


def render(numbers: dict[str, Any], plots: dict[str, str]) -> str:
    totals = numbers["totals"]
    summary = (
        f"{totals['answers']} answers by {totals['annotators']} annotators on {totals['sources']} sources; "
        f"{totals['paired_sources']} sources answered by two or more; {totals['gold_answers']} gold answers; "
        f"{totals['reviewed']} answers sent to review. Generated {html.escape(numbers['generated_at'])} from the "
        "catalog (run <code>medgen annotate pull</code> first for the latest answers)."
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Annotation quality</title><style>{STYLE}</style>"
        f"</head><body><h1>Annotation quality</h1><p class='muted'>{summary}</p>"
        f"<h2>Annotators</h2>{_people_table(numbers)}<div class='grid'>"
        f'<figure><img src="{plots["time"]}" alt="time per task"></figure>'
        f'<figure><img src="{plots["gold"]}" alt="gold accuracy"></figure></div>'
        f"<h2>Agreement with the consensus</h2><p class='muted'>Share of candidates where the person's answer in the "
        f"dimension equals the consensus, on sources two or more people answered.</p>{_consensus_table(numbers)}"
        f"<h2>Dimensions</h2>{_dimension_section(numbers, plots)}</body></html>"
    )


def write_report(workspace: Workspace, out: Path | None = None, min_agreement: float | None = None) -> Path:
    """``index.html`` and ``report.json`` under ``out`` (default ``<workspace>/reports/annotation``)."""
    out = out or workspace.root / "reports" / "annotation"
    out.mkdir(parents=True, exist_ok=True)
    numbers = report_numbers(workspace, DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement)
    plots = plot_people(numbers) | plot_dimensions(numbers)
    atomic_write_text(out / "report.json", json.dumps(numbers, indent=2))
    atomic_write_text(out / "index.html", render(numbers, plots))
    return out / "index.html"
