"""The bus between collectors and the sink: Kafka, or in-process for development."""
