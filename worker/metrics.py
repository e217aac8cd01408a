"""Every Prometheus metric ticklake exports, declared in one place.

Names follow ``ticklake_<component>_<name>_<unit>[_total]``. Labels come from
small fixed sets only: data type, exchange and stream from the configuration,
reason codes from enums, Kafka partition numbers. Never raw error text,
symbols from the wire or ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

BUILD = Info("ticklake_build", "ticklake version and component")

# --- sink ---------------------------------------------------------------
SINK_RECORDS_CONSUMED = Counter(
    "ticklake_sink_records_consumed_total", "Kafka messages consumed", ["data_type"]
)
SINK_RECORDS_SKIPPED = Counter(
    "ticklake_sink_records_skipped_total",
    "Replayed messages skipped because a stored file already holds them",
    ["data_type"],
)
SINK_ROWS_WRITTEN = Counter(
    "ticklake_sink_rows_written_total", "Rows written to files", ["data_type", "destination"]
)
SINK_FILES_WRITTEN = Counter(
    "ticklake_sink_files_written_total", "Parquet files stored", ["data_type", "destination"]
)
SINK_BYTES_WRITTEN = Counter(
    "ticklake_sink_bytes_written_total", "Parquet bytes stored", ["data_type", "destination"]
)
SINK_FLUSHES = Counter(
    "ticklake_sink_flushes_total", "Buffer flushes by trigger", ["data_type", "trigger"]
)
SINK_FLUSH_DURATION = Histogram(
    "ticklake_sink_flush_duration_seconds",
    "Time to encode, check and store one batch (file and sidecar)",
    ["data_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SINK_ROWS_PER_FILE = Histogram(
    "ticklake_sink_rows_per_file",
    "Rows in each stored file",
    ["data_type"],
    buckets=(1, 10, 100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000),
)
SINK_QUALITY_SCORE = Gauge(
    "ticklake_sink_quality_score", "Quality score (0-100) of the last batch", ["data_type"]
)
SINK_QUALITY_BATCHES = Histogram(
    "ticklake_sink_batch_quality_score",
    "Quality score (0-100) of each batch",
    ["data_type"],
    buckets=(50, 80, 90, 95, 98, 99, 99.9, 100),
)
SINK_QUALITY_ISSUES = Counter(
    "ticklake_sink_quality_issues_total",
    "Rows failing each named quality check",
    ["data_type", "check"],
)
SINK_DUPLICATES_REMOVED = Counter(
    "ticklake_sink_duplicates_removed_total", "Exact duplicate rows removed", ["data_type"]
)
SINK_QUARANTINED = Counter(
    "ticklake_sink_quarantined_batches_total",
    "Batches under the quality threshold, stored under _quarantine/",
    ["data_type"],
)
SINK_DEAD_LETTERS = Counter(
    "ticklake_sink_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"]
)
SINK_POISON_RECORDS = Counter(
    "ticklake_sink_poison_records_total",
    "Valid records whose file could not be made or stored (dead-lettered or quarantined)",
    ["data_type", "stage"],  # stage: parse | encode | storage
)
SINK_BUFFERED_ROWS = Gauge("ticklake_sink_buffered_rows", "Rows held in open buffers")
SINK_BUFFERED_BYTES = Gauge("ticklake_sink_buffered_bytes", "Approximate bytes in open buffers")
SINK_OPEN_BUFFERS = Gauge("ticklake_sink_open_buffers", "Open buffers")
SINK_PAUSED_PARTITIONS = Gauge(
    "ticklake_sink_paused_partitions", "Partitions paused for the memory cap"
)
SINK_ASSIGNED_PARTITIONS = Gauge("ticklake_sink_assigned_partitions", "Partitions assigned")
SINK_CONSUMER_LAG = Gauge(
    "ticklake_sink_consumer_lag_records",
    "High watermark minus position, per partition",
    ["topic", "partition"],
)
SINK_COMMITS = Counter("ticklake_sink_commits_total", "Offset commits", ["result"])
SINK_LAST_FLUSH = Gauge(
    "ticklake_sink_last_flush_timestamp_seconds", "Unix time of the last successful flush"
)

# --- storage ------------------------------------------------------------
STORAGE_ERRORS = Counter(
    "ticklake_storage_errors_total", "Failed storage calls", ["operation", "retriable"]
)
STORAGE_RETRIES = Counter("ticklake_storage_retries_total", "Storage call retries", ["operation"])

# --- collectors ---------------------------------------------------------
COLLECTOR_MESSAGES = Counter(
    "ticklake_collector_messages_received_total",
    "Updates received from exchanges",
    ["exchange", "data_type"],
)
COLLECTOR_PUBLISHED = Counter(
    "ticklake_collector_records_published_total",
    "Records acknowledged by Kafka (or the in-process bus)",
    ["exchange", "data_type"],
)
COLLECTOR_PUBLISH_ERRORS = Counter(
    "ticklake_collector_publish_errors_total", "Failed publish attempts", ["reason"]
)
COLLECTOR_RECONNECTS = Counter(
    "ticklake_collector_reconnects_total",
    "Stream reconnects",
    ["exchange", "data_type", "reason"],
)
COLLECTOR_STALE_RESETS = Counter(
    "ticklake_collector_stale_resets_total",
    "Reconnects forced by the staleness watchdog",
    ["exchange", "data_type"],
)
COLLECTOR_BOOK_RESYNCS = Counter(
    "ticklake_collector_book_resyncs_total",
    "Order-book resubscriptions after a sequence gap or checksum error",
    ["exchange"],
)
COLLECTOR_INVALID = Counter(
    "ticklake_collector_invalid_updates_total",
    "Updates refused by normalisation (malformed, NaN, wrong type)",
    ["exchange", "data_type", "reason"],
)
COLLECTOR_DUPLICATES = Counter(
    "ticklake_collector_duplicate_updates_total",
    "Updates already published (replayed trades, repeated candles)",
    ["exchange", "data_type"],
)
COLLECTOR_LATENCY = Histogram(
    "ticklake_collector_latency_seconds",
    "Exchange event time to collector receive time",
    ["exchange", "data_type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COLLECTOR_LAST_MESSAGE = Gauge(
    "ticklake_collector_last_message_timestamp_seconds",
    "Unix time of the last update per stream",
    ["exchange", "data_type"],
)
COLLECTOR_SECONDS_SINCE = Gauge(
    "ticklake_collector_seconds_since_last_message",
    "Seconds since the last update per stream",
    ["exchange", "data_type"],
)
COLLECTOR_STREAM_UP = Gauge(
    "ticklake_collector_stream_up", "1 while a stream is connected", ["exchange", "data_type"]
)
COLLECTOR_QUEUE_DEPTH = Gauge(
    "ticklake_collector_queue_depth_records", "Records waiting for the producer"
)
COLLECTOR_DROPPED = Counter(
    "ticklake_collector_dropped_records_total",
    "Records dropped because the publish queue was full (oldest first)",
    ["data_type"],
)
COLLECTOR_PUBLISH_LATENCY = Histogram(
    "ticklake_collector_publish_latency_seconds",
    "Collector receive time to broker acknowledgement",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
COLLECTOR_CACHE_OVERRUNS = Counter(
    "ticklake_collector_cache_overruns_total",
    "Times ccxt's bounded cache evicted updates before the collector read them",
    ["exchange", "data_type"],
)

# --------------------------------------------------------------------------- Kafka reachability
# worker/bus/broker_watch.py; log events broker_unreachable / broker_reachable.
# client: consumer (the sink) | producer (the collectors) | dead_letter (the sink's DLQ).
KAFKA_BROKER_REACHABLE = Gauge(
    "ticklake_kafka_broker_reachable",
    "1 while the Kafka client's requests succeed, 0 once they failed for unreachable_after_s",
    ["client"],
)
KAFKA_BROKER_UNREACHABLE_SECONDS = Counter(
    "ticklake_kafka_broker_unreachable_seconds_total",
    "Seconds the Kafka client could not reach any broker (outages of unreachable_after_s or more)",
    ["client"],
)
