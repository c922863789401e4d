"""Export: samples from the catalog to a validated Parquet dataset with a card; publish to the Hub."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medgen.export.load import load_export

__all__ = ["load_export"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `medgen --help` (which imports medgen.export.cli) does not load pydantic models.
    if name == "load_export":
        from medgen.export.load import load_export

        return load_export
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
