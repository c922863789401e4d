"""Export: samples from the catalog to a validated Parquet dataset with a card; publish to the Hub."""

from medgen.export.load import load_export

__all__ = ["load_export"]
