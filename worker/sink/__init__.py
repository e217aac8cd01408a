"""The sink: bus -> buffers -> quality -> Parquet -> store, exactly once."""
