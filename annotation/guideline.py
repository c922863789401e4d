"""The annotators' guideline, generated from the taxonomy: Label Studio shows it before labeling.

Each dimension with its question, each tag with its description, its keys for candidates A-D, and
an example image where the synthetic backend can make one (``medgen generate`` writes them into the
workspace's ``guideline/`` folder). Label Studio strips ``data:`` images from instructions, so the
examples go through the image store and are served like the task images (``example_urls``). The
same text serves every queue, gold tasks included.
"""

from __future__ import annotations

import html

from annotation.client import Connection
from annotation.config import CLEAN_KEYS, MODIFIERS, SUBMIT_KEY, hotkey
from annotation.images import image_urls
from medgen.workspace import Workspace
from schemas import LETTERS, TAXONOMY


def example_urls(connection: Connection, workspace: Workspace) -> dict[str, str]:
    """Example name ('clean', a tag id) -> URL the server shows it under; empty without examples."""
    files = sorted(workspace.guideline_dir.glob("*.jpg")) if workspace.guideline_dir.is_dir() else []
    keys = {path.stem: workspace.store.put_bytes(path.read_bytes(), "jpg") for path in files}
    urls = image_urls(connection, workspace, list(keys.values()))
    return {name: urls[key] for name, key in keys.items()}


def _example(examples: dict[str, str], name: str) -> str:
    if name not in examples:
        return ""
    return f'<img src="{html.escape(examples[name])}" alt="example: {html.escape(name)}" width="128" height="128">'


def _keys(key: str | None) -> str:
    if not key:
        return "mouse, then write a note"
    return " · ".join(f"{letter}: <kbd>{html.escape(hotkey(letter, key))}</kbd>" for letter in LETTERS)


def instruction_html(examples: dict[str, str] | None = None) -> str:
    """The guideline as HTML; ``examples`` maps 'clean' and tag ids to example image URLs."""
    examples = examples or {}
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


REVIEW_INSTRUCTION = (
    "<h2>Reviewing annotators' answers</h2>"
    "<p>Each task is one annotator's answer on one source: the original, candidates A-D, and under each candidate "
    "what the annotator said. Check it against the guideline the annotators work from (the same taxonomy and "
    "examples). <b>Accept</b> (key <kbd>1</kbd>) when the answer is right; <b>Reject</b> (key <kbd>2</kbd>) when "
    "it is not, and say what the annotator should change (type it, then <kbd>shift+enter</kbd> adds it to your "
    "decision): they read your comment on their returned task, with "
    "their answer filled in, and answer again. <kbd>ctrl+enter</kbd> submits. Skip a task only when an image "
    "does not load.</p>"
)
