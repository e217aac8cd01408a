"""Fixtures for the deployment-artefact tests: the external tools and rendered charts.

The tools (promtool, prometheus, helm, kubernetes-validate, hadolint) come from
``scripts/deploy-tools``, which puts them in ``.services/bin``. A test whose
tool is missing is skipped -- or fails with ``REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import services_required

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".services" / "bin"
CHART = REPO_ROOT / "helm" / "ticklake"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO_ROOT / "deploy" / "prometheus" / "alerts_test.yml"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
KUBE_VERSION = "1.33.0"


def find_tool(name: str) -> str | None:
    """``$<NAME>`` (e.g. ``PROMTOOL``), then ``.services/bin``, then ``PATH``."""
    override = os.environ.get(name.upper().replace("-", "_"))
    if override:
        return override
    local = TOOLS_BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        message = f"{name} is not installed; run scripts/deploy-tools"
        if services_required():
            pytest.fail(f"{message} [REQUIRE_SERVICES=1]", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return require_tool("prometheus")


@pytest.fixture(scope="session")
def helm() -> str:
    return require_tool("helm")


@pytest.fixture(scope="session")
def kubernetes_validate() -> str:
    return require_tool("kubernetes-validate")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and capture its output as text (never raises on exit status)."""
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120, **kwargs)


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """``render(*helm_args)`` -> the chart's objects, as dicts; fails on a render error."""

    def _render(*args: str, namespace: str = "market-data") -> list[dict[str, Any]]:
        proc = run(
            [helm, "template", "ticklake", str(CHART), "--namespace", namespace,
             "--kube-version", KUBE_VERSION, *args]
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]

    return _render


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]
