"""deploy/grafana: dashboards are generated, well formed, and query only ticklake's metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import worker.metrics
from tests.deploy.conftest import GRAFANA, run
from tests.deploy.promql import PROMETHEUS_SERIES, declared_sample_names, metric_names

# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_MACROS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
}


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(GRAFANA.glob("*.json"))
    }


def panel_queries() -> list[tuple[str, str]]:
    """(``<file>/<panel title>/<refId>``, PromQL as Grafana sends it) for every target."""
    out = []
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{name}/{panel['title']}/{target['refId']}", target["expr"]))
    return out


def expand(expr: str) -> str:
    """Replace Grafana's macros and template variables as Grafana would."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    # Template variables sit in regex matchers (=~"$var"); "All" is ".*".
    return re.sub(r"\$\{?(namespace|data_type|exchange)\}?", ".*", expr)


QUERIES = panel_queries()


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered = load_generator().render()
    committed = {p.name: p.read_text(encoding="utf-8") for p in GRAFANA.glob("*.json")}
    assert committed == rendered, "run: python deploy/grafana/generate.py"


def test_three_dashboards_cover_the_issue() -> None:
    titles = {board["uid"]: board["title"] for board in dashboards().values()}
    assert set(titles) == {"ticklake-ingest", "ticklake-quality", "ticklake-collectors"}


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_is_well_formed(name: str) -> None:
    board = dashboards()[name]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            # Every used variable is defined.
            for var in re.findall(r"\$\{?([a-z_]+)\}?", target["expr"]):
                assert var.startswith("__") or var in variables, f"{panel['title']}: ${var}"
            assert 'namespace=~"$namespace"' in target["expr"], panel["title"]


def test_every_panel_query_parses_with_promtool(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule; a bad one is named by its record."""
    records = {f"dashboard:query_{i}": (where, expr) for i, (where, expr) in enumerate(QUERIES)}
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": r, "expr": expand(e)} for r, (_, e) in records.items()],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    proc = run([promtool, "check", "rules", str(path)])
    output = proc.stdout + proc.stderr
    for record, (where, _) in records.items():
        output = output.replace(record, f"{record} ({where})")
    assert proc.returncode == 0, output
    assert f"SUCCESS: {len(QUERIES)} rules found" in proc.stdout


def test_promtool_rejects_a_broken_query(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    rules = {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(a[5m])"}]}]}
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    assert run([promtool, "check", "rules", str(path)]).returncode != 0


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_panel_queries_name_only_declared_metrics(where: str, expr: str) -> None:
    used = metric_names(expand(expr))
    assert used, f"{where} selects no metric"
    unknown = used - declared_sample_names(worker.metrics) - PROMETHEUS_SERIES
    assert not unknown, f"{where} queries metrics worker/metrics.py does not declare: {unknown}"


def test_template_variables_query_declared_metrics() -> None:
    declared = declared_sample_names(worker.metrics)
    for board in dashboards().values():
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                metric = re.match(r"label_values\((\w+),", var["definition"])
                assert metric, var["definition"]
                assert metric.group(1) in declared, var["definition"]
