"""Answers cached as they arrive: an interrupted run asks only what it had not asked yet.

One JSON line per answered question (``{"id": ..., "raw": ...}``) in a file named after the model and
a digest of its generation settings, so other settings never reuse an answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from medgen.inference.base import Asked


def cache_path(output_dir: Path, name: str, settings: dict[str, Any]) -> Path:
    """Raw-answer cache of one model under one set of generation settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"
    return output_dir / "raw" / f"{slug}-{digest}.jsonl"


def read_cache(path: Path) -> dict[str, str]:
    done: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that question is simply asked again
            done[record["id"]] = record["raw"]
    return done


def generate_cached(
    questions: Sequence[Asked],
    generate: Callable[[Sequence[Asked]], Iterable[tuple[Asked, str]]],
    cache: Path,
    on_done: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Raw answers for ``questions``: read from ``cache``, the rest generated and appended as they arrive."""
    done = read_cache(cache)
    todo = [q for q in questions if q.id not in done]
    if on_done:
        on_done(len(questions) - len(todo))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a") as file:
        for question, raw in generate(todo):
            done[question.id] = raw
            file.write(json.dumps({"id": question.id, "raw": raw}) + "\n")
            file.flush()
            if on_done:
                on_done(1)
    return done
