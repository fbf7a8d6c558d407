"""The README's paths, followed as written: "Using it" with examples/operator-config.yaml and
examples/sprint.yaml, and "Run it with a real agent" with examples/sprint-claude.yaml applied as is
(the real Claude Code CLI in its container, the Anthropic API replaced by the local stand-in)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from _e2e import apply, operator_process, sprint_status, tasks_of, wait_for
from _proxy import REAL_KEY, expected_usage
from conftest import REPO
from localcluster import LocalCluster
from test_agent_e2e import ThreadedStandIn, agent_image  # noqa: F401  (a fixture)
from test_lifecycle_e2e import by_id, git, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
EXAMPLES = REPO / "examples"


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name).read_text()))


def example_operator_env(tmp: Path) -> dict[str, str]:
    """What the README says to run: hack/example-repo.sh, then the operator with the example config."""
    repo = tmp / "textstats.git"
    subprocess.run(["bash", str(REPO / "hack/example-repo.sh"), str(repo)], check=True, capture_output=True)
    return {
        "SPRINT_ORCHESTRATOR_CONFIG": str(EXAMPLES / "operator-config.yaml"),
        "TEXTSTATS_REPO": str(repo),
        "SPRINT_TREES": str(tmp / "trees"),
    }


def test_the_readme_using_it_path_runs_the_example_sprint_as_written(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    env = example_operator_env(tmp_path)
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env):
        apply(cluster, namespace, (EXAMPLES / "sprint.yaml").read_text())
        status = wait_terminal(cluster, namespace, "textstats-1", timeout=600)
    assert status["phase"] == "Completed", status.get("message")
    files = git("-C", env["TEXTSTATS_REPO"], "ls-tree", "-r", "--name-only", "main").split()
    assert {"textstats/words.py", "textstats/report.py", ".sprint/reports/textstats-1.md"} <= set(files)


def test_a_sprint_without_a_team_needs_a_model_key_and_says_which(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    env = example_operator_env(tmp_path) | {"ANTHROPIC_API_KEY": ""}  # none, whatever this shell has
    manifest = example("sprint-claude.yaml")
    del manifest["spec"]["team"]  # the operator's default team: claude-code
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env):
        apply(cluster, namespace, manifest)
        status = wait_terminal(cluster, namespace, "textstats-claude", timeout=120)
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "MissingApiKey"
    assert "'claude-code'" in ready["message"] and "ANTHROPIC_API_KEY" in ready["message"]
    assert "sprint/textstats-claude" not in git("-C", env["TEXTSTATS_REPO"], "branch", "--list")


def test_the_claude_example_runs_the_real_cli_through_the_proxy_as_is(
    cluster: LocalCluster,
    namespace: str,
    tmp_path: Path,
    agent_image: str,  # noqa: F811
) -> None:
    """The stand-in agent only writes OUTPUT.md, so each task's gate fails and it waits in Review; what
    this proves is the wiring a user with a key gets: the example applies unchanged, each task runs
    the real CLI with no key in its container, and every token served is metered on its Task."""
    env = example_operator_env(tmp_path)
    log = tmp_path / "op.log"
    with ThreadedStandIn() as standin:
        env |= {"SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url, "ANTHROPIC_API_KEY": REAL_KEY,
                "SPRINT_ORCHESTRATOR_AGENT_IMAGE": agent_image}  # fmt: skip
        with operator_process(cluster, namespace, tmp_path / "state", log, **env):
            apply(cluster, namespace, (EXAMPLES / "sprint-claude.yaml").read_text())

            def reviewed() -> dict[str, dict[str, Any]] | None:
                tasks = by_id(cluster, namespace, "textstats-claude")
                ready = all(tasks.get(t, {}).get("phase") == "Review" for t in ("words", "lines"))
                return tasks if ready else None

            tasks = wait_for(reviewed, timeout=900, what="words and lines to wait in review")
            served = list(standin.served)
    for task_id in ("words", "lines"):
        task = tasks[task_id]
        assert task["reason"] == "GateFailed" and task["tokens"]["source"] == "proxy", task
    assert tasks["report"].get("phase", "Pending") in ("Pending", "Ready")  # waits for its dependencies
    metered = sum(tasks[t]["tokens"]["actual"] for t in ("words", "lines"))
    assert metered == expected_usage(served).total_tokens
    assert sprint_status(cluster, namespace, "textstats-claude")["phase"] == "Running"
    assert REAL_KEY not in log.read_text()
    assert len(tasks_of(cluster, namespace, "textstats-claude")) == 3
