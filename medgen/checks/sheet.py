"""The checks' HTML sheet: each source beside its candidates, the located product outlined on each candidate
(red where a check failed), and every finding with its value, threshold and confidence.

Self-contained: thumbnails are written beside ``index.html`` (``thumbs/``), so the folder can be shared.
Sources with findings come first; a very large run lists its first ``MAX_GROUPS`` sources with findings and
says how many it left out (every candidate is in ``checks.jsonl`` / ``checks.csv``).
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from medgen.checks.config import CheckConfig
from medgen.files import atomic_write_text
from schemas.taxonomy import LETTERS, TAXONOMY

THUMB = 240
MAX_GROUPS = 300
CLEAN_SHOWN = 20


def _img(path: Path, out: Path, alt: str, box: Sequence[float] | None = None, failed: bool = False) -> str:
    """The ``<img>`` of a thumbnail (or a note where the file is gone)."""
    if not Path(path).is_file():
        return f'<p class="gone">{html.escape(Path(path).name)}: file missing</p>'
    return f'<img src="{thumbnail(path, out, box, failed)}" alt="{html.escape(alt)}">'


def thumbnail(
    path: Path, out: Path, box: Sequence[float] | None = None, failed: bool = False, size: int = THUMB
) -> str:
    """A JPEG thumbnail in ``out/thumbs`` (the product box drawn when given), named by the file, its
    modification time and the box; its path relative to ``out``."""
    key = f"{Path(path).resolve()}|{Path(path).stat().st_mtime_ns}|{box}|{failed}|{size}"
    target = out / "thumbs" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.jpg"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size))
            if box is not None:
                w, h = image.size
                x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w - 1, box[3] * h - 1
                if x1 > x0 and y1 > y0:  # a product found wholly outside the frame has no box to draw
                    colour = (210, 30, 30) if failed else (30, 150, 60)
                    ImageDraw.Draw(image).rectangle((x0, y0, x1, y1), outline=colour, width=3)
            image.save(target, quality=85)
    return f"thumbs/{target.name}"


def write_sheet(records: Sequence[dict[str, Any]], config: CheckConfig) -> Path:
    out = config.output_dir
    assert out is not None
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["source"], []).append(record)
    failing = [g for g in groups.values() if any(r["findings"] for r in g)]
    clean = [g for g in groups.values() if not any(r["findings"] for r in g)]
    shown = failing[:MAX_GROUPS] + clean[:CLEAN_SHOWN]
    labels = {tag.id: tag.label for dimension in TAXONOMY.dimensions for tag in dimension.tags}
    labels["appearance_other"] = "Product not found"
    sections = []
    for group in shown:
        first = group[0]
        cells = [
            f'<figure class="source">{_img(Path(first["source_path"]), out, "source")}'
            f"<figcaption>source {html.escape(str(first['source'])[:16])}</figcaption></figure>"
        ]
        for index, record in enumerate(group):
            letter = LETTERS[index] if len(group) <= len(LETTERS) else str(index + 1)
            items = "".join(
                f"<li><b>{html.escape(labels.get(f['tag'], f['tag']))}</b>: {html.escape(f['check'])} "
                f"{f['value']:g} (threshold {f['threshold']:g}, confidence {f['confidence']:.0%})</li>"
                for f in record["findings"]
            )
            if str(record.get("located_by", "")).startswith("error"):
                badge = f'<span class="badge unknown">not checked ({html.escape(record["located_by"][7:])})</span>'
            elif record["findings"]:
                badge = '<span class="badge bad">fails</span>'
            else:
                badge = '<span class="badge ok">passes</span>'
            image = _img(
                Path(record["path"]), out, letter, record.get("product_box"), bool(record["findings"])
            )
            name = Path(str(record["candidate"])).name
            cells.append(
                f'<figure class="candidate">{image}'
                f'<figcaption>{badge} <b>{letter}</b> <span class="id">{html.escape(name[-24:])}</span>'
                f"<ul>{items}</ul></figcaption></figure>"
            )
        sections.append(f'<section class="group">{"".join(cells)}</section>')
    left = len(failing) - min(len(failing), MAX_GROUPS)
    total = len(records)
    flagged = sum(bool(r["findings"]) for r in records)
    note = f" {left} more sources with findings are in checks.jsonl." if left else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medgen check</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
.group{{display:flex;gap:.8rem;align-items:flex-start;border-bottom:1px solid #ddd;padding:.8rem 0}}
figure{{margin:0;width:{THUMB}px}} img{{max-width:100%;border-radius:4px}}
.source img{{outline:3px solid #888}} ul{{margin:.3rem 0;padding-left:1.1rem;font-size:.85rem}}
.badge{{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-weight:600;color:#fff}}
.ok{{background:#1a7f37}} .bad{{background:#c62828}} .unknown{{background:#777}} .id{{color:#777;font-size:.8rem}}
</style></head><body>
<h1>Automatic checks</h1>
<p>{total} candidates, {flagged} with findings, against their originals. The box marks where the original's
product was found (red: a check failed). Thresholds: <code>medgen check --help</code>; what the checks cannot
judge: README, "Automatic checks".{note}</p>
{"".join(sections)}
</body></html>
"""
    path = out / "index.html"
    atomic_write_text(path, body)
    return path
