"""`medgen samples DIR -n N --seed S`: write procedural medicine-product photos to try the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medgen.console import console, progress


def samples(
    directory: Annotated[Path, typer.Argument(help="Folder to write the photos into (created if missing).")],
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many photos to write.")] = 24,
    seed: Annotated[int, typer.Option(help="Same seed, same photos.")] = 0,
) -> None:
    """Write N procedural photos of medicine products (boxes, bottles, blisters, tubes), ready for `sources add`."""
    from medgen.sources.samples import write_samples

    with progress() as bar:
        task = bar.add_task("drawing samples", total=n, unit="images")
        paths = write_samples(directory, n, seed, on_progress=lambda path: bar.advance(task))
    console.print(f"wrote {len(paths)} sample photos to [bold]{directory}[/]")
    console.print(f"next: medgen sources add {directory}")
