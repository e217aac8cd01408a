"""The command line: subcommands, config errors, log format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from worker.cli import SINK_GC_THRESHOLD


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_the_subcommands() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for cmd in ("sink", "collect", "run", "check-config"):
        assert cmd in out.stdout


def test_unknown_config_key_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kafka:\n  bootstrap: x\n")
    out = _run("check-config", "--config", str(cfg))
    assert out.returncode == 2
    assert "kafka.bootstrap" in out.stderr
    assert str(cfg) in out.stderr


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("storage:\n  secret_access_key: s3cr3t-value\n")
    out = _run("check-config", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "s3cr3t-value" not in out.stdout
    assert json.loads(out.stdout)["storage"]["secret_access_key"] == "**********"


def test_logs_are_json_lines_without_a_terminal() -> None:
    code = (
        "from worker.logging import configure_logging, get_logger;"
        "configure_logging('info', 'auto');"
        "get_logger('t').info('flushed', rows=3)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    event = json.loads(out.stderr.strip().splitlines()[-1])
    assert event["event"] == "flushed"
    assert event["rows"] == 3
    assert event["level"] == "info"
    assert event["component"] == "t"


def test_sink_collects_young_garbage_less_often(tmp_path: Path) -> None:
    """``ticklake sink`` raises the young-generation GC threshold before it runs."""
    cfg = tmp_path / "sink.yaml"
    cfg.write_text("sink:\n  encode_processes: 0\n")
    code = (
        "import gc, sys, worker.sink.app as app\n"
        "async def fake(settings):\n"
        "    print(gc.get_threshold()[0])\n"
        "    return 0\n"
        "app.run_sink = fake\n"
        "from worker.cli import app as cli\n"
        "print(gc.get_threshold()[0])\n"
        f"cli(['sink', '--config', {str(cfg)!r}])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, during = map(int, out.stdout.split())
    assert (before, during) == (700, SINK_GC_THRESHOLD)
