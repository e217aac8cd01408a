"""ticklake: market-data lake ingestion."""

__version__ = "0.1.0"
