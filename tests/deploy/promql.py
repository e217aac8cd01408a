"""Metric names in PromQL expressions, and the names ticklake exports."""

from __future__ import annotations

from collections.abc import Iterable

import promql_parser
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

# Series Prometheus itself makes for every target.
PROMETHEUS_SERIES = frozenset({"up"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (raises ValueError if it does not parse)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                names.update(m.value for m in node.matchers.matchers if m.name == "__name__")

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def sample_names(family_name: str, family_type: str) -> set[str]:
    """The sample names one metric family exposes (a histogram has _bucket, _sum, _count)."""
    base = family_name.removesuffix("_total") if family_type == "counter" else family_name
    if family_type == "info":
        base = family_name.removesuffix("_info")
    return {base + suffix for suffix in _SUFFIXES.get(family_type, ("",))}


def declared_sample_names(module: object) -> set[str]:
    """Sample names of every metric object declared in ``module`` (worker.metrics)."""
    names: set[str] = set()
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= sample_names(family.name, family.type)
    return names


def scraped_sample_names(texts: Iterable[str]) -> set[str]:
    """Sample names of every family announced in Prometheus text-format scrapes.

    A labelled metric with no children yet has ``# TYPE`` but no samples; it is
    still exposed, so families count, not samples.
    """
    names: set[str] = set()
    for text in texts:
        for family in text_string_to_metric_families(text):
            names |= sample_names(family.name, family.type)
    return names
