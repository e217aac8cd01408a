"""deploy/prometheus/alerts.yml: promtool accepts and unit-tests it; every alert is documented."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

import worker.metrics
from tests.deploy.conftest import ALERTS, ALERTS_TEST, RUNBOOK, run
from tests.deploy.promql import PROMETHEUS_SERIES, declared_sample_names, metric_names

RUNBOOK_BASE = "https://github.com/ticklake/ticklake/blob/main/docs/runbook.md"


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings (lower case, punctuation dropped)."""
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


ALERT_NAMES = [rule["alert"] for rule in alert_rules()]

# What issue 5 asks to alert on, and the alert that covers it.
REQUIRED = {
    "data-quality score under threshold": "TicklakeQualityScoreLow",
    "quarantine rate": "TicklakeQuarantineRateHigh",
    "no successful flush for N minutes": "TicklakeSinkNoRecentFlush",
    "consumer lag growing": "TicklakeConsumerLagGrowing",
    "stale feed per exchange and stream": "TicklakeStaleFeed",
    "reconnect storm": "TicklakeReconnectStorm",
    "S3 error rate": "TicklakeStorageErrorRateHigh",
    "dead-letter rate": "TicklakeDeadLetterRateHigh",
    "dropped records": "TicklakeRecordsDropped",
    "worker down": "TicklakeWorkerDown",
}


def test_promtool_check_rules(promtool: str) -> None:
    proc = run([promtool, "check", "rules", str(ALERTS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in proc.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    proc = run([promtool, "test", "rules", str(ALERTS_TEST)], cwd=ALERTS_TEST.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_catch_a_broken_rule(promtool: str, tmp_path: Any) -> None:
    """The unit tests are not vacuous: loosen one rule and they fail."""
    broken = ALERTS.read_text(encoding="utf-8").replace(
        "min by (namespace, exchange, data_type) (time() -",
        "max by (namespace, exchange, data_type) (time() -",
    )
    assert broken != ALERTS.read_text(encoding="utf-8")
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    (tmp_path / "alerts_test.yml").write_text(ALERTS_TEST.read_text(encoding="utf-8"))
    proc = run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path)
    assert proc.returncode != 0
    assert "TicklakeStaleFeed" in proc.stdout + proc.stderr


def test_every_required_alert_exists() -> None:
    missing = {what: name for what, name in REQUIRED.items() if name not in ALERT_NAMES}
    assert not missing
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES)), "duplicate alert names"


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_alert_is_documented(rule: dict[str, Any]) -> None:
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert rule["labels"]["severity"] in {"warning", "critical"}
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{anchor}"
    assert anchor in runbook_anchors(), f"docs/runbook.md has no '## {rule['alert']}' section"


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_alert_uses_only_exported_metrics(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used
    unknown = used - declared_sample_names(worker.metrics) - PROMETHEUS_SERIES
    assert not unknown, f"{rule['alert']} queries metrics ticklake does not export: {unknown}"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == set(ALERT_NAMES)
    assert quiet == set(ALERT_NAMES)
