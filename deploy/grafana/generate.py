"""Generate the Grafana dashboards in this folder: ``python deploy/grafana/generate.py``.

``--check`` writes nothing and exits 1 when a committed file is out of date.

The JSON files are committed (the Helm chart ships them as ConfigMaps for
Grafana's sidecar); tests/deploy/test_dashboards.py fails when they differ
from what this script writes, when a query does not parse, or when a query
names a metric that ticklake does not export.

Every query filters on ``namespace=~"$namespace"``: the label is set by the
Prometheus Operator and absent elsewhere, where the "All" value ``.*`` still
matches.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"


@dataclass
class Panel:
    title: str
    exprs: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    height: int = 8
    overrides: dict[str, Any] = field(default_factory=dict)


def _var_query(name: str, label: str, metric: str, *, datasource: bool = True) -> dict[str, Any]:
    query = f"label_values({metric}, {label})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"} if datasource else None,
        "query": {"query": query, "refId": f"var-{name}"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _templating(extra: list[dict[str, Any]]) -> dict[str, Any]:
    datasource = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    namespace = _var_query("namespace", "namespace", "ticklake_sink_assigned_partitions")
    return {"list": [datasource, namespace, *extra]}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(ord("A") + i),
            **({"instant": True} if panel.kind == "stat" else {}),
        }
        for i, (expr, legend) in enumerate(panel.exprs)
    ]
    defaults: dict[str, Any] = {"unit": panel.unit, **panel.overrides}
    options: dict[str, Any] = {}
    if panel.kind == "timeseries":
        options = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    elif panel.kind == "heatmap":
        options = {"calculate": False, "yAxis": {"unit": panel.unit}}
        for target in targets:
            target["format"] = "heatmap"
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    """Lay the panels out left to right, top to bottom, on Grafana's 24-column grid."""
    laid: list[dict[str, Any]] = []
    x = y = row_height = 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid.append(_panel_json(panel, i, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["ticklake"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": _templating(variables),
        "annotations": {"list": []},
        "links": [
            {
                "title": "ticklake dashboards",
                "type": "dashboards",
                "tags": ["ticklake"],
                "asDropdown": True,
            }
        ],
        "panels": laid,
    }


def _sum_rate(metric: str, by: str, selector: str = "") -> str:
    sel = f"{NS}, {selector}" if selector else NS
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RATE}]))"


def _quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    sel = f"{NS}, {selector}" if selector else NS
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[{RATE}])))"


DT = 'data_type=~"$data_type"'
EX = 'exchange=~"$exchange", data_type=~"$data_type"'


def ingest() -> dict[str, Any]:
    panels = [
        Panel(
            "Workers up",
            [(f'sum by (job) (up{{job=~"ticklake-(collector|sink)", {NS}}})', "{{job}}")],
            kind="stat",
            width=6,
            height=4,
            description="Scrape targets answering /metrics, per component.",
        ),
        Panel(
            "Time since last flush",
            [
                (
                    f"time() - max(ticklake_sink_last_flush_timestamp_seconds{{{NS}}})",
                    "newest flush",
                )
            ],
            unit="s",
            kind="stat",
            width=6,
            height=4,
            overrides={
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"color": "green", "value": None},
                        {"color": "orange", "value": 300},
                        {"color": "red", "value": 600},
                    ],
                }
            },
        ),
        Panel(
            "Consumer lag (total)",
            [(f"sum(ticklake_sink_consumer_lag_records{{{NS}}})", "lag")],
            unit="short",
            kind="stat",
            width=6,
            height=4,
        ),
        Panel(
            "Partitions assigned / paused",
            [
                (f"sum(ticklake_sink_assigned_partitions{{{NS}}})", "assigned"),
                (f"sum(ticklake_sink_paused_partitions{{{NS}}})", "paused (memory cap)"),
            ],
            kind="stat",
            width=6,
            height=4,
        ),
        Panel(
            "Records consumed / s",
            [(_sum_rate("ticklake_sink_records_consumed_total", "data_type", DT), "{{data_type}}")],
            unit="ops",
        ),
        Panel(
            "Rows written / s",
            [
                (
                    _sum_rate("ticklake_sink_rows_written_total", "data_type, destination", DT),
                    "{{data_type}} → {{destination}}",
                ),
                (
                    _sum_rate("ticklake_sink_records_skipped_total", "data_type", DT),
                    "{{data_type}} skipped (replay)",
                ),
            ],
            unit="ops",
        ),
        Panel(
            "Consumer lag per partition",
            [
                (
                    f"max by (topic, partition) (ticklake_sink_consumer_lag_records{{{NS}}})",
                    "{{topic}}[{{partition}}]",
                )
            ],
        ),
        Panel(
            "Flush latency",
            [
                (
                    _quantile(0.5, "ticklake_sink_flush_duration_seconds", "data_type", DT),
                    "p50 {{data_type}}",
                ),
                (
                    _quantile(0.99, "ticklake_sink_flush_duration_seconds", "data_type", DT),
                    "p99 {{data_type}}",
                ),
            ],
            unit="s",
            description="Encode, check and store one batch (file and sidecar).",
        ),
        Panel(
            "Bytes written / s",
            [
                (
                    _sum_rate("ticklake_sink_bytes_written_total", "data_type, destination", DT),
                    "{{data_type}} → {{destination}}",
                )
            ],
            unit="Bps",
        ),
        Panel(
            "Files written / min",
            [
                (
                    "60 * " + _sum_rate("ticklake_sink_files_written_total", "data_type", DT),
                    "{{data_type}}",
                )
            ],
        ),
        Panel(
            "Flushes / s by trigger",
            [(_sum_rate("ticklake_sink_flushes_total", "trigger", DT), "{{trigger}}")],
            unit="ops",
        ),
        Panel(
            "Rows per file (median)",
            [(_quantile(0.5, "ticklake_sink_rows_per_file", "data_type", DT), "{{data_type}}")],
        ),
        Panel(
            "Buffered rows and bytes",
            [
                (f"sum(ticklake_sink_buffered_rows{{{NS}}})", "rows"),
                (f"sum(ticklake_sink_buffered_bytes{{{NS}}})", "bytes"),
                (f"sum(ticklake_sink_open_buffers{{{NS}}})", "open buffers"),
            ],
        ),
        Panel(
            "Offset commits / s",
            [(_sum_rate("ticklake_sink_commits_total", "result"), "{{result}}")],
            unit="ops",
        ),
        Panel(
            "Storage errors and retries / s",
            [
                (
                    _sum_rate("ticklake_storage_errors_total", "operation, retriable"),
                    "error {{operation}} (retriable={{retriable}})",
                ),
                (_sum_rate("ticklake_storage_retries_total", "operation"), "retry {{operation}}"),
            ],
            unit="ops",
            width=24,
        ),
    ]
    variables = [_var_query("data_type", "data_type", "ticklake_sink_records_consumed_total")]
    return dashboard(
        "ticklake-ingest",
        "ticklake / Ingest health",
        "Sink throughput, consumer lag, flushes, files and storage errors.",
        panels,
        variables,
    )


def quality() -> dict[str, Any]:
    mean_score = (
        f"{_sum_rate('ticklake_sink_batch_quality_score_sum', 'data_type', DT)}"
        f" / {_sum_rate('ticklake_sink_batch_quality_score_count', 'data_type', DT)}"
    )
    quarantine_ratio = (
        f"{_sum_rate('ticklake_sink_quarantined_batches_total', 'data_type', DT)}"
        f" / {_sum_rate('ticklake_sink_batch_quality_score_count', 'data_type', DT)}"
    )
    panels = [
        Panel(
            "Last batch score",
            [(f"min by (data_type) (ticklake_sink_quality_score{{{NS}, {DT}}})", "{{data_type}}")],
            kind="stat",
            width=12,
            height=5,
            overrides={
                "min": 0,
                "max": 100,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"color": "red", "value": None},
                        {"color": "orange", "value": 95},
                        {"color": "green", "value": 98},
                    ],
                },
            },
        ),
        Panel(
            "Quarantined batches (range)",
            [
                (
                    f"sum by (data_type) (increase(ticklake_sink_quarantined_batches_total"
                    f"{{{NS}, {DT}}}[$__range]))",
                    "{{data_type}}",
                )
            ],
            kind="stat",
            width=12,
            height=5,
        ),
        Panel(
            "Mean batch score by data type",
            [(mean_score, "{{data_type}}")],
            overrides={"min": 0, "max": 100},
            description="Alert TicklakeQualityScoreLow fires under 98 for 15 minutes.",
        ),
        Panel(
            "Batch score distribution",
            [
                (
                    f"sum by (le) (increase(ticklake_sink_batch_quality_score_bucket"
                    f"{{{NS}, {DT}}}[$__interval]))",
                    "{{le}}",
                )
            ],
            kind="heatmap",
        ),
        Panel(
            "Failing checks (rows / s)",
            [
                (
                    _sum_rate("ticklake_sink_quality_issues_total", "data_type, check", DT),
                    "{{data_type}}: {{check}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Quarantine ratio",
            [(quarantine_ratio, "{{data_type}}")],
            unit="percentunit",
            description="Share of batches stored under _quarantine/.",
        ),
        Panel(
            "Dead letters / s by reason",
            [(_sum_rate("ticklake_sink_dead_letters_total", "reason"), "{{reason}}")],
            unit="ops",
        ),
        Panel(
            "Duplicates removed / s",
            [
                (
                    _sum_rate("ticklake_sink_duplicates_removed_total", "data_type", DT),
                    "sink {{data_type}}",
                ),
                (
                    _sum_rate("ticklake_collector_duplicate_updates_total", "data_type", DT),
                    "collector {{data_type}}",
                ),
            ],
            unit="ops",
        ),
        Panel(
            "Updates refused by normalisation / s",
            [
                (
                    _sum_rate(
                        "ticklake_collector_invalid_updates_total",
                        "exchange, data_type, reason",
                        DT,
                    ),
                    "{{exchange}} {{data_type}}: {{reason}}",
                )
            ],
            unit="ops",
            width=24,
        ),
    ]
    variables = [_var_query("data_type", "data_type", "ticklake_sink_records_consumed_total")]
    return dashboard(
        "ticklake-quality",
        "ticklake / Data quality",
        "Quality scores, failing checks, quarantine and dead letters.",
        panels,
        variables,
    )


def collectors() -> dict[str, Any]:
    panels = [
        Panel(
            "Streams connected",
            [
                (
                    f"sum(ticklake_collector_stream_up{{{NS}, {EX}}})",
                    "connected",
                )
            ],
            kind="stat",
            width=8,
            height=4,
        ),
        Panel(
            "Publish queue depth",
            [(f"sum(ticklake_collector_queue_depth_records{{{NS}}})", "records")],
            kind="stat",
            width=8,
            height=4,
        ),
        Panel(
            "Dropped records (range)",
            [
                (
                    f"sum(increase(ticklake_collector_dropped_records_total"
                    f'{{{NS}, data_type=~"$data_type"}}[$__range]))',
                    "dropped",
                )
            ],
            kind="stat",
            width=8,
            height=4,
            overrides={
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                }
            },
        ),
        Panel(
            "Messages received / s",
            [
                (
                    _sum_rate(
                        "ticklake_collector_messages_received_total", "exchange, data_type", EX
                    ),
                    "{{exchange}} {{data_type}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Records published / s",
            [
                (
                    _sum_rate(
                        "ticklake_collector_records_published_total", "exchange, data_type", EX
                    ),
                    "{{exchange}} {{data_type}}",
                ),
                (
                    _sum_rate("ticklake_collector_publish_errors_total", "reason"),
                    "error: {{reason}}",
                ),
            ],
            unit="ops",
        ),
        Panel(
            "Seconds since last message",
            [
                (
                    f"min by (exchange, data_type) "
                    f"(ticklake_collector_seconds_since_last_message{{{NS}, {EX}}})",
                    "{{exchange}} {{data_type}}",
                )
            ],
            unit="s",
            description="Alert TicklakeStaleFeed fires above 60 s for 2 minutes.",
        ),
        Panel(
            "Exchange → collector latency",
            [
                (
                    _quantile(0.5, "ticklake_collector_latency_seconds", "exchange", EX),
                    "p50 {{exchange}}",
                ),
                (
                    _quantile(0.99, "ticklake_collector_latency_seconds", "exchange", EX),
                    "p99 {{exchange}}",
                ),
            ],
            unit="s",
        ),
        Panel(
            "Collector → Kafka acknowledgement latency",
            [
                (
                    "histogram_quantile(0.5, sum by (le) (rate("
                    f"ticklake_collector_publish_latency_seconds_bucket{{{NS}}}[{RATE}])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) (rate("
                    f"ticklake_collector_publish_latency_seconds_bucket{{{NS}}}[{RATE}])))",
                    "p99",
                ),
            ],
            unit="s",
        ),
        Panel(
            "ccxt cache overruns (per 10 min)",
            [
                (
                    f"sum by (exchange, data_type) (increase("
                    f"ticklake_collector_cache_overruns_total{{{NS}, {EX}}}[10m]))",
                    "{{exchange}} {{data_type}}",
                )
            ],
            description="Updates evicted by ccxt's bounded cache before the collector read them.",
        ),
        Panel(
            "Reconnects (per 10 min)",
            [
                (
                    f"sum by (exchange, data_type, reason) (increase("
                    f"ticklake_collector_reconnects_total{{{NS}, {EX}}}[10m]))",
                    "{{exchange}} {{data_type}}: {{reason}}",
                ),
                (
                    f"sum by (exchange, data_type) (increase("
                    f"ticklake_collector_stale_resets_total{{{NS}, {EX}}}[10m]))",
                    "{{exchange}} {{data_type}}: watchdog",
                ),
            ],
            description="Alert TicklakeReconnectStorm fires above 5 per 10 minutes.",
        ),
        Panel(
            "Order-book resyncs (per 10 min)",
            [
                (
                    f"sum by (exchange) (increase(ticklake_collector_book_resyncs_total"
                    f'{{{NS}, exchange=~"$exchange"}}[10m]))',
                    "{{exchange}}",
                )
            ],
        ),
        Panel(
            "Dropped records / s",
            [
                (
                    _sum_rate(
                        "ticklake_collector_dropped_records_total",
                        "data_type",
                        'data_type=~"$data_type"',
                    ),
                    "{{data_type}}",
                )
            ],
            unit="ops",
        ),
    ]
    variables = [
        _var_query("exchange", "exchange", "ticklake_collector_messages_received_total"),
        _var_query("data_type", "data_type", "ticklake_collector_messages_received_total"),
    ]
    return dashboard(
        "ticklake-collectors",
        "ticklake / Collectors",
        "Exchange streams: messages, reconnects, staleness and latency.",
        panels,
        variables,
    )


DASHBOARDS = {
    "ticklake-ingest.json": ingest,
    "ticklake-quality.json": quality,
    "ticklake-collectors.json": collectors,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in render().items():
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date (run python {Path(__file__).name}): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
