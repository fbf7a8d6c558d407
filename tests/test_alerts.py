"""Alert rules: `promtool test rules` (promtool from Debian's prometheus package) on the unit tests in
manifests/monitoring/alerts.test.yaml, syntax checks of the rule file and of the generated
PrometheusRule, and every metric an alert uses is one the operator really exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from _ops import exported_metric_names, referenced_metric_names

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "manifests" / "monitoring"
PROMTOOL = shutil.which("promtool")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.fail("promtool is missing: run hack/setup.sh (installs Debian's prometheus package)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def rules() -> list[dict[str, str]]:
    groups = yaml.safe_load((MONITORING / "alerts.rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(MONITORING / "alerts.test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_weakened_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    text = (MONITORING / "alerts.rules.yaml").read_text().replace("> 3600", "> 360000")
    (tmp_path / "alerts.rules.yaml").write_text(text)
    shutil.copy(MONITORING / "alerts.test.yaml", tmp_path / "alerts.test.yaml")
    result = promtool("test", "rules", str(tmp_path / "alerts.test.yaml"))
    assert result.returncode != 0
    assert "SprintStalled" in result.stdout + result.stderr


def test_the_rule_file_and_the_generated_prometheus_rule_are_valid(tmp_path: Path) -> None:
    spec = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    assert spec == yaml.safe_load((MONITORING / "alerts.rules.yaml").read_text())
    (tmp_path / "from-crd.yaml").write_text(yaml.safe_dump(spec))
    for path in (MONITORING / "alerts.rules.yaml", tmp_path / "from-crd.yaml"):
        result = promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_s_alerts_are_all_there_with_severity_and_summary() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for name in (
        "SprintStalled",
        "SprintTaskFailureRateHigh",
        "SprintTokenBudgetExceeded",
        "SprintOrchestratorOperatorDown",
        "SprintStatusUpdatesLagging",
    ):
        assert by_name[name]["labels"]["severity"] in {"warning", "critical"}
        assert by_name[name]["annotations"]["summary"]


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert tested == {rule["alert"] for rule in rules()}


def test_alerts_use_only_metrics_the_operator_exports() -> None:
    exported = exported_metric_names()
    used = set().union(*(referenced_metric_names(rule["expr"]) for rule in rules()))
    assert used, "the rules reference no operator metric"
    assert used <= exported, f"not exported by metrics.py: {sorted(used - exported)}"
