"""A sprint task driven by the REAL Gemini CLI, end to end, through the operator's metering proxy.

The real kube-apiserver, the operator as a process (its GEMINI_API_KEY fake, its Gemini URL the
stand-in's), a real target repository and a network-less Podman container of the agent image (Node 24
from the wheel). The Gemini API stand-in scripts the session over SSE (read_file TASK.md, write_file
OUTPUT.md, finish). Checked: the sprint completes, OUTPUT.md is on main, the Task's tokens come from
the proxy and equal exactly what the stand-in served, the CLI's own report agrees, and neither the
container's config nor any operator file holds the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _e2e import apply, operator_process
from _proxy import REAL_KEY, expected_usage
from _standin_gemini import GeminiStandIn
from localcluster import LocalCluster
from test_agent_e2e import SPRINT, InspectWatcher, ThreadedStandIn, agent_image, agent_sprint
from test_lifecycle_e2e import by_id, config, git, seed_repository, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman, pytest.mark.timeout(1500)]
__all__ = ["agent_image"]  # the fixture, used here by name
MODEL = "gemini-2.5-flash"


def gemini_sprint(repo: Path, image: str, estimated: int = 20000, factor: float = 2.0) -> dict[str, object]:
    sprint = agent_sprint(repo, image, estimated, factor, team="gemini")
    spec = sprint["spec"]
    assert isinstance(spec, dict)
    spec["displayName"] = "The Gemini CLI through the proxy"
    spec["team"] = {"type": "gemini", "model": MODEL}
    return sprint


def test_the_gemini_cli_runs_a_sprint_task_through_the_metering_proxy(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "op.log"
    with ThreadedStandIn(GeminiStandIn()) as standin:
        standin.faults.block_delay_s = 1.0  # slow enough to see the usage grow while the task runs
        env = {**config(tmp_path), "SPRINT_ORCHESTRATOR_GEMINI_URL": standin.url, "GEMINI_API_KEY": REAL_KEY}
        with (
            InspectWatcher(cluster, namespace) as watcher,
            operator_process(cluster, namespace, tmp_path / "state", log, **env),
        ):
            apply(cluster, namespace, gemini_sprint(repo, agent_image))
            status = wait_terminal(cluster, namespace, SPRINT, timeout=900)
        served = list(standin.served)
        seen_keys = list(standin.seen_keys)
        paths = list(standin.paths)
    task = by_id(cluster, namespace, SPRINT)["greet"]
    assert status["phase"] == "Completed", (status.get("message"), task, log.read_text()[-4000:])

    output = git("-C", str(repo), "show", "main:OUTPUT.md")
    assert output.startswith("done: ") and len(output) > len("done: \n")

    expected = expected_usage(served)
    tokens = task["tokens"]
    assert len(served) >= 3 and not expected.partial
    assert all(p == f"POST /v1beta/models/{MODEL}:streamGenerateContent?alt=sse" for p in paths), paths
    assert tokens["source"] == "proxy" and tokens["partial"] is False
    got = [tokens[k] for k in ("actual", "input", "output", "cacheRead", "cacheCreation")]
    assert got == [expected.total_tokens, expected.input_tokens, expected.output_tokens,
                   expected.cache_read_tokens, expected.cache_creation_tokens]  # fmt: skip
    assert expected.cache_read_tokens and expected.reasoning_tokens  # cache and thoughts were both served
    assert tokens["byModel"] == {MODEL: expected.total_tokens}
    assert tokens["agentReported"] == expected.total_tokens  # the CLI's own stream-json agrees
    assert seen_keys and all(key == REAL_KEY for key in seen_keys)  # the proxy put the key in
    live = [t for t in watcher.live if t.get("source") == "proxy"]
    assert live and all(t["partial"] and 0 < t["actual"] <= expected.total_tokens for t in live), watcher.live

    assert watcher.seen, "the task container was never seen running"
    for text in watcher.seen.values():
        inspect = json.loads(text)[0]
        assert inspect["HostConfig"]["NetworkMode"] == "none"
        assert any(m["Destination"] == "/run/sprint-llm" for m in inspect["Mounts"])
        assert REAL_KEY not in text
    assert REAL_KEY not in log.read_text()
    for path in (p for p in (tmp_path / "state").rglob("*") if p.is_file()):
        assert REAL_KEY not in path.read_text(errors="replace"), path


def test_a_spent_token_budget_stops_the_gemini_cli_and_fails_the_task_with_budget_exceeded(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "op.log"
    with ThreadedStandIn(GeminiStandIn()) as standin:
        env = {**config(tmp_path), "SPRINT_ORCHESTRATOR_GEMINI_URL": standin.url, "GEMINI_API_KEY": REAL_KEY}
        with operator_process(cluster, namespace, tmp_path / "state", log, **env):
            apply(cluster, namespace, gemini_sprint(repo, agent_image, estimated=100, factor=1.5))
            wait_terminal(cluster, namespace, SPRINT, timeout=900)
        served = list(standin.served)
    task = by_id(cluster, namespace, SPRINT)["greet"]
    assert (task["phase"], task["reason"], task["attempt"]) == ("Failed", "BudgetExceeded", 1), task
    assert "task budget: 150" in task["error"]
    assert len(served) == 1  # the first response spent the budget; the next request was refused
    assert (task["tokens"]["source"], task["tokens"]["actual"]) == (
        "proxy",
        expected_usage(served).total_tokens,
    )
    assert "OUTPUT.md" not in git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert REAL_KEY not in log.read_text()


def test_without_a_gemini_key_the_sprint_fails_at_once_naming_the_variable(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    env = {**config(tmp_path), "GEMINI_API_KEY": ""}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env):
        apply(cluster, namespace, gemini_sprint(repo, agent_image))
        status = wait_terminal(cluster, namespace, SPRINT, timeout=300)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["reason"]) == ("Failed", "MissingApiKey"), status  # before any branch
    assert "set GEMINI_API_KEY in the operator's environment" in ready["message"]
    task = by_id(cluster, namespace, SPRINT).get("greet", {})
    assert task.get("phase") in (None, "Pending", "Ready") and not task.get("containerId"), task
