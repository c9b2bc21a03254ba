"""deploy/prometheus/rules.yaml: valid for Prometheus (`promtool check rules`) and each
alert fires, and stays quiet, as deploy/prometheus/rules_test.yaml says
(`promtool test rules`). Skipped when promtool is missing (Debian's `prometheus`
package installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="no promtool binary (apt-get install prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=RULES, capture_output=True, text=True, timeout=60
    )


@needs_promtool
def test_rules_are_valid():
    result = _promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rules_fire_as_their_unit_tests_say():
    result = _promtool("test", "rules", "rules_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    rules = yaml.safe_load((RULES / "rules.yaml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    assert alerts >= {
        "UnitserveHighErrorRatio",
        "UnitserveHighLatencyP99",
        "UnitserveWorkerRestarts",
        "UnitserveDown",
        "UnitserveNoWorkers",
    }
    tests = yaml.safe_load((RULES / "rules_test.yaml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    assert fired == alerts
    assert quiet == alerts
