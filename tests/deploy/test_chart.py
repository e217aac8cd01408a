"""helm/ticklake renders valid, restricted Kubernetes objects that match the worker's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    ALERTS,
    CHART,
    GRAFANA,
    KUBE_VERSION,
    PRODUCTION_VALUES,
    Render,
    by_kind,
    one,
    run,
)
from worker.config import load_config

VALUE_SETS = {"default": [], "production": ["-f", str(PRODUCTION_VALUES)]}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint(helm: str, values: list[str]) -> None:
    proc = run([helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *values])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_objects_pass_strict_schema_validation(
    render: Render, kubernetes_validate: str, values: list[str], tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(render(*values)), encoding="utf-8")
    proc = run([kubernetes_validate, "--strict", "-k", KUBE_VERSION, str(manifest)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout + proc.stderr


def test_schema_validation_rejects_unknown_fields(
    render: Render, kubernetes_validate: str, tmp_path: Path
) -> None:
    """--strict is not a no-op: a misspelt field in a Deployment fails."""
    objects = render()
    deployment = by_kind(objects, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    proc = run([kubernetes_validate, "--strict", "-k", KUBE_VERSION, str(manifest)])
    assert proc.returncode != 0


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_configmap_is_a_valid_worker_config(
    render: Render, values: list[str], tmp_path: Path
) -> None:
    config = one(render(*values), "ConfigMap", "ticklake-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(config, encoding="utf-8")
    settings = load_config(path)  # raises ConfigError on unknown keys
    assert settings.http.port == 9100


def _containers(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (d["spec"]["template"]["spec"], c)
        for d in by_kind(objects, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_pods_are_restricted(render: Render, values: list[str]) -> None:
    objects = render(*values)
    assert {d["metadata"]["name"] for d in by_kind(objects, "Deployment")} == {
        "ticklake-collector",
        "ticklake-sink",
    }
    for pod, container in _containers(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        assert "emptyDir" in volume
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]


@pytest.mark.parametrize(
    ("args", "deadline", "grace"),
    [
        ([], 30, 45),
        (["-f", str(PRODUCTION_VALUES)], 45, 60),
        (["--set", "config.sink.shutdown_deadline_s=90.5"], 90.5, 106),
    ],
)
def test_sink_grace_period_exceeds_flush_deadline(
    render: Render, args: list[str], deadline: float, grace: int
) -> None:
    objects = render(*args)
    pod = one(objects, "Deployment", "ticklake-sink")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == grace
    assert pod["terminationGracePeriodSeconds"] > deadline
    assert pod["containers"][0]["args"] == ["sink", "--config", "/etc/ticklake/config.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "sink.replicas=7"], "sink.replicas (7) exceeds sink.topicPartitions (6)"),
        (
            ["--set", "sink.autoscaling.enabled=true", "--set", "sink.autoscaling.maxReplicas=8"],
            "sink.autoscaling.maxReplicas (8) exceeds sink.topicPartitions (6)",
        ),
        (
            ["--set", "credentials.existingSecret=s", "--set", "credentials.accessKeyId=a"],
            "set either credentials.existingSecret or the credential values",
        ),
        (["--set", "sink.terminationGraceExtraSeconds=0"], "terminationGraceExtraSeconds"),
    ],
)
def test_render_refuses_unsafe_values(helm: str, args: list[str], message: str) -> None:
    proc = run([helm, "template", "ticklake", str(CHART), "--kube-version", KUBE_VERSION, *args])
    assert proc.returncode != 0
    assert message in proc.stderr


def test_sink_replicas_up_to_partitions_render(render: Render) -> None:
    objects = render("--set", "sink.replicas=6")
    assert one(objects, "Deployment", "ticklake-sink")["spec"]["replicas"] == 6


def test_credentials_secret_or_existing_secret(render: Render) -> None:
    objects = render(
        "--set", "credentials.accessKeyId=AKIA", "--set", "credentials.secretAccessKey=s3cret"
    )
    secret = one(objects, "Secret", "ticklake")
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s3cret"}
    for _, container in _containers(objects):
        assert container["envFrom"] == [{"secretRef": {"name": "ticklake"}}]

    objects = render("--set", "credentials.existingSecret=spaces-creds")
    assert not by_kind(objects, "Secret")
    for _, container in _containers(objects):
        assert container["envFrom"] == [{"secretRef": {"name": "spaces-creds"}}]


def test_default_values_need_no_crds(render: Render) -> None:
    kinds = {o["kind"] for o in render()}
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    }


def test_prometheus_rule_holds_the_alerts_file(render: Render) -> None:
    rule = one(render("-f", str(PRODUCTION_VALUES)), "PrometheusRule", "ticklake")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]


def test_prometheus_rule_runbook_base_url(render: Render) -> None:
    rule = one(
        render(
            "--set", "prometheusRule.enabled=true",
            "--set", "prometheusRule.runbookBaseUrl=https://wiki.example/runbook",
        ),
        "PrometheusRule",
        "ticklake",
    )  # fmt: skip
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls
    assert all(u.startswith("https://wiki.example/runbook#ticklake") for u in urls)


def test_dashboards_are_configmaps_for_the_grafana_sidecar(render: Render) -> None:
    objects = render()
    dashboards = {
        o["metadata"]["name"]: o
        for o in by_kind(objects, "ConfigMap")
        if o["metadata"]["labels"].get("grafana_dashboard") == "1"
    }
    files = sorted(GRAFANA.glob("*.json"))
    assert len(files) == 3
    assert set(dashboards) == {f"ticklake-dashboard-{f.stem}" for f in files}
    for path in files:
        data = dashboards[f"ticklake-dashboard-{path.stem}"]["data"]
        assert json.loads(data[path.name]) == json.loads(path.read_text(encoding="utf-8"))


def test_service_monitor_scrapes_both_services_as_the_alerting_jobs(render: Render) -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    monitor = one(objects, "ServiceMonitor", "ticklake")
    selector = monitor["spec"]["selector"]["matchLabels"]
    job_label = monitor["spec"]["jobLabel"]
    jobs = set()
    for service in by_kind(objects, "Service"):
        labels = service["metadata"]["labels"]
        assert selector.items() <= labels.items()
        jobs.add(labels[job_label])
        assert service["spec"]["ports"][0]["name"] == monitor["spec"]["endpoints"][0]["port"]
    # The job names TicklakeWorkerDown matches.
    assert jobs == {"ticklake-collector", "ticklake-sink"}


def test_keda_scaled_object_on_consumer_lag(render: Render) -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    scaled = one(objects, "ScaledObject", "ticklake-sink")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "ticklake-sink"
    assert scaled["spec"]["maxReplicaCount"] <= 12  # production topicPartitions
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "ticklake-sink"
    assert trigger["metadata"]["lagThreshold"] == "50000"
    # KEDA owns the replica count.
    assert "replicas" not in one(objects, "Deployment", "ticklake-sink")["spec"]


def test_pod_disruption_budgets_select_their_pods(render: Render) -> None:
    objects = render()
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        deployment = one(objects, "Deployment", pdb["metadata"]["name"])
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
