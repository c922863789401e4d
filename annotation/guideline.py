"""The annotators' guideline, generated from the taxonomy: Label Studio shows it before labeling.

Each dimension with its question, each tag with its description, its keys for candidates A-D, and
an example image where the synthetic backend can make one (``medgen generate`` writes them into the
workspace's ``guideline/`` folder). The same text serves every queue, gold tasks included.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from annotation.config import CLEAN_KEYS, MODIFIERS, SUBMIT_KEY, hotkey
from schemas import LETTERS, TAXONOMY


def _example(folder: Path | None, name: str) -> str:
    path = folder / f"{name}.jpg" if folder is not None else None
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/jpeg;base64,{data}" alt="example: {html.escape(name)}" width="128" height="128">'


def _keys(key: str | None) -> str:
    if not key:
        return "mouse, then write a note"
    return " · ".join(f"{letter}: <kbd>{html.escape(hotkey(letter, key))}</kbd>" for letter in LETTERS)


def instruction_html(examples: Path | None = None) -> str:
    """The guideline as HTML; ``examples`` is the folder of example images (``<tag>.jpg``), if any."""
    modifiers = ", ".join(f"{letter} {MODIFIERS[letter] or 'no modifier'}" for letter in LETTERS)
    clean = " · ".join(f"{letter}: <kbd>{CLEAN_KEYS[letter]}</kbd>" for letter in LETTERS)
    parts = [
        "<h2>Screening generated product photos</h2>",
        "<p>The <b>original</b> is a real photo of a medicine product; candidates <b>A-D</b> were generated "
        "from it. For each candidate decide: is it fit to publish as it is (<b>No defects</b>), or which "
        "defects does it have? Compare with the original: the product must keep its shape, text, logo, "
        "colours and parts. Zoom in (scroll, or the + button) to read text and find seams.</p>",
        f"<p><b>Keyboard.</b> No defects: {clean}. A defect: the tag's key, with the candidate's modifier "
        f"({modifiers}). <kbd>{SUBMIT_KEY}</kbd> submits. A clean task is five keys: 1 2 3 4 Ctrl+Enter.</p>",
        f"<p>{_example(examples, 'clean')} A clean candidate: same product, plausible scene.</p>",
    ]
    for dimension in TAXONOMY.dimensions:
        parts.append(f"<h3>{html.escape(dimension.label)}</h3>")
        parts.append(f"<p>Consider {html.escape(dimension.description)}.</p>")
        parts.append("<table><tr><th>Tag</th><th>What it looks like</th><th>Keys</th><th>Example</th></tr>")
        for tag in dimension.tags:
            parts.append(
                f"<tr><td><b>{html.escape(tag.label)}</b></td><td>{html.escape(tag.description)}</td>"
                f"<td>{_keys(tag.key)}</td><td>{_example(examples, tag.id)}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<p>Some tasks are checks with known answers; they look like every other task. Answer each task "
        "on its own merits; skip one only when an image does not load.</p>"
    )
    return "\n".join(parts)
