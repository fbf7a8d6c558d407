"""The Grafana dashboard (manifests/monitoring/dashboard.json, provisioned by the chart): valid
structure, the issue's four themes, PromQL that promtool accepts, and only metrics metrics.py exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from _ops import exported_metric_names, referenced_metric_names

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "manifests" / "monitoring" / "dashboard.json"
GRID_WIDTH = 24


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_dashboard_has_identity_variables_and_unique_panel_ids() -> None:
    dash = dashboard()
    assert dash["uid"] == "sprint-orchestrator" and dash["title"] and dash["schemaVersion"] >= 36
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "namespace", "sprint"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        mine = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_every_panel_queries_the_selected_datasource() -> None:
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_the_issue_s_themes_have_rows() -> None:
    rows = {p["title"] for p in dashboard()["panels"] if p["type"] == "row"}
    assert {"Sprint velocity", "Token usage and cost", "Quality gates", "Resource efficiency"} <= rows


def test_panels_use_only_metrics_the_operator_exports() -> None:
    exported = exported_metric_names()
    used = set().union(*(referenced_metric_names(e) for e in exprs()))
    assert used <= exported, f"not exported by metrics.py: {sorted(used - exported)}"
    families = {name.removesuffix("_total").removesuffix("_bucket") for name in used}
    for needed in (
        "sprint_orchestrator_tasks",
        "sprint_orchestrator_sprint_tokens",
        "sprint_orchestrator_gate_results",
        "sprint_orchestrator_task_container_cpus",
    ):
        assert needed in families


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run hack/setup.sh (installs Debian's prometheus package)")
    concrete = [
        e.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$sprint", ".*")
        for e in exprs()
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(concrete)],
            }
        ]
    }
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "queries.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_ships_the_same_dashboard() -> None:
    chart_copy = REPO / "helm" / "sprint-orchestrator" / "files" / "dashboard.json"
    assert json.loads(chart_copy.read_text()) == dashboard()
