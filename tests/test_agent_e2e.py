"""A sprint task driven by the REAL Claude Code CLI, end to end, through the operator's metering proxy.

The real kube-apiserver, the operator as a process (its ANTHROPIC_API_KEY fake, its Anthropic URL the
stand-in's), a real target repository and a network-less Podman container of the agent image. The
stand-in scripts the session (Read TASK.md, Write OUTPUT.md, finish). Checked: the sprint completes,
OUTPUT.md is on main, the Task's tokens come from the proxy and equal exactly what the stand-in served,
the CLI's own report agrees, and neither the container's config nor any operator log holds the key.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, operator_process, sprint_status, start_operator, stop_operator, wait_for
from _proxy import REAL_KEY, expected_usage
from _standin_anthropic import AnthropicStandIn, OpenAIStandIn, StandIn
from conftest import REPO
from localcluster import LocalCluster
from test_lifecycle_e2e import by_id, config, events_in, git, seed_repository, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman, pytest.mark.timeout(1500)]
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "hack" / "containers.conf")}
SPRINT = "agent-1"
LABELS = ("--filter", f"label=sprintorchestrator.dev/sprint={SPRINT}",
          "--filter", "label=sprintorchestrator.dev/attempt")  # fmt: skip


@pytest.fixture(scope="module")
def agent_image() -> str:
    """The agent image (real Claude Code + the forwarder), built by the hack scripts (cached)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: run hack/setup-podman.sh")
    out = ""
    for script in ("base-image.sh", "agent-image.sh"):
        done = subprocess.run(["bash", str(REPO / "hack" / script)], env=PODMAN_ENV, capture_output=True,
                              text=True, timeout=1800, check=False)  # fmt: skip
        assert done.returncode == 0, f"hack/{script} failed:\n{done.stderr[-3000:]}"
        out = done.stdout
    return out.strip().splitlines()[-1]


class ThreadedStandIn:
    """The Anthropic stand-in on its own event loop in a thread: the test itself waits synchronously."""

    def __init__(self, server: StandIn | None = None) -> None:
        self.server = server or AnthropicStandIn()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


class InspectWatcher:
    """Polls `podman inspect` of the sprint's task containers while they exist (the operator removes
    them when the task ends), keeping every inspect document seen, and the Task's live `tokens`."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.seen: dict[str, str] = {}
        self.live: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> InspectWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            ids = podman("ps", "-a", "-q", *LABELS).split()
            for cid in ids:
                text = podman("container", "inspect", cid)
                if text.strip().startswith("["):
                    self.seen.setdefault(cid, text)
            if ids:
                for status in by_id(self.cluster, self.namespace, SPRINT).values():
                    if status.get("phase") == "Running" and status.get("tokens"):
                        self.live.append(status["tokens"])


def podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, check=False)
    return done.stdout


def agent_sprint(
    repo: Path, image: str, estimated: int = 20000, factor: float = 2.0, team: str = "claude-code"
) -> dict[str, Any]:
    model = "claude-sonnet-4-5" if team == "claude-code" else "gpt-test"
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": SPRINT},
        "spec": {
            "displayName": "Claude Code through the proxy",
            "repository": {"url": str(repo), "mainBranch": "main"},
            "team": {"type": team, "model": model},
            "container": {
                "baseImage": image,
                "resourceLimits": {"cpus": 1, "memory": "2Gi", "pids": 512, "timeoutSeconds": 600},
            },
            "maxParallelTasks": 1,
            "policy": {"tokenBudgetFactor": factor},
            "tasks": [
                {
                    "id": "greet",
                    "title": "Greet the sprint",
                    "description": "Write OUTPUT.md with a greeting.",
                    "priority": "high",
                    "estimatedTokens": estimated,
                    "filesToModify": ["OUTPUT.md"],
                }
            ],
        },
    }


def test_claude_code_runs_a_sprint_task_through_the_metering_proxy(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "op.log"
    with ThreadedStandIn() as standin:
        standin.faults.block_delay_s = 1.0  # slow enough to see the usage grow while the task runs
        env = {**config(tmp_path), "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url,
               "ANTHROPIC_API_KEY": REAL_KEY}  # fmt: skip
        with (
            InspectWatcher(cluster, namespace) as watcher,
            operator_process(cluster, namespace, tmp_path / "state", log, **env),
        ):
            apply(cluster, namespace, agent_sprint(repo, agent_image))
            status = wait_terminal(cluster, namespace, SPRINT, timeout=900)
        served = list(standin.served)
        seen_keys = list(standin.seen_keys)
    task = by_id(cluster, namespace, SPRINT)["greet"]
    assert status["phase"] == "Completed", (status.get("message"), task.get("reason"), task.get("error"))

    output = git("-C", str(repo), "show", "main:OUTPUT.md")
    assert output.startswith("done: ") and len(output) > len("done: \n")

    expected = expected_usage(served)
    tokens = task["tokens"]
    assert len(served) >= 3 and not expected.partial
    assert tokens["source"] == "proxy" and tokens["partial"] is False
    got = [tokens[k] for k in ("actual", "input", "output", "cacheRead", "cacheCreation")]
    assert got == [expected.total_tokens, expected.input_tokens, expected.output_tokens,
                   expected.cache_read_tokens, expected.cache_creation_tokens]  # fmt: skip
    assert tokens["byModel"] == {m: u.total_tokens for m, u in expected.by_model.items()}
    assert tokens["agentReported"] == expected.total_tokens  # the CLI's own count agrees with the wire
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
    assert not list((tmp_path / "state" / "run" / "llm").glob("*/llm.sock"))  # the socket was closed


def test_a_spent_token_budget_fails_the_task_with_budget_exceeded(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "op.log"
    with ThreadedStandIn() as standin:
        env = {**config(tmp_path), "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url,
               "ANTHROPIC_API_KEY": REAL_KEY}  # fmt: skip
        with operator_process(cluster, namespace, tmp_path / "state", log, **env):
            apply(cluster, namespace, agent_sprint(repo, agent_image, estimated=100, factor=1.5))
            wait_terminal(cluster, namespace, SPRINT, timeout=900)
        served = list(standin.served)
    task = by_id(cluster, namespace, SPRINT)["greet"]
    assert (task["phase"], task["reason"], task["attempt"]) == ("Failed", "BudgetExceeded", 1), task
    assert "task budget: 150" in task["error"] and "tokenBudgetFactor" in task["error"]
    assert len(served) == 1  # the first response spent the budget; the next request was refused
    assert task["tokens"]["source"] == "proxy"
    assert task["tokens"]["actual"] == expected_usage(served).total_tokens
    assert "OUTPUT.md" not in git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert REAL_KEY not in log.read_text()


def test_codex_runs_a_sprint_task_through_the_metering_proxy(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    """The OpenAI stand-in only answers (Codex writes nothing): the task is metered exactly and, having
    changed nothing, waits in Review (NoChanges) instead of passing as done."""
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "op.log"
    with ThreadedStandIn(OpenAIStandIn()) as standin:
        env = {**config(tmp_path), "SPRINT_ORCHESTRATOR_OPENAI_URL": standin.url, "OPENAI_API_KEY": REAL_KEY}
        with operator_process(cluster, namespace, tmp_path / "state", log, **env):
            apply(cluster, namespace, agent_sprint(repo, agent_image, team="codex"))
            task = wait_for(
                lambda: (
                    (t := by_id(cluster, namespace, SPRINT).get("greet", {})).get("phase") == "Review" and t
                ),
                timeout=900,
                what="the Codex task to wait in review",
            )
            status = sprint_status(cluster, namespace, SPRINT)
        served = list(standin.served)
        seen_keys = list(standin.seen_keys)
    assert (task["reason"], task["noChanges"]) == ("NoChanges", True), task
    assert status["phase"] == "Running", status  # waits for a human: nothing is reported as done
    expected = expected_usage(served)
    assert served and task["tokens"]["source"] == "proxy"
    assert (task["tokens"]["actual"], task["tokens"]["output"]) == (
        expected.total_tokens,
        expected.output_tokens,
    )
    assert task["tokens"]["agentReported"] == expected.total_tokens  # Codex's own turn.completed agrees
    assert seen_keys and all(key == f"Bearer {REAL_KEY}" for key in seen_keys)
    assert REAL_KEY not in log.read_text()


def test_an_operator_restarted_mid_task_reattaches_and_the_usage_stays_exact(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    """SIGTERM while Claude Code runs: the container runs on; the next operator re-opens the socket in
    the directory the container has mounted, seeds its ledger from the journal, and bills every token."""
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    log = tmp_path / "op.log"
    with ThreadedStandIn() as standin:
        standin.faults.delay_s = 2.0  # each response held 2 s: the restart lands between responses
        env = {**config(tmp_path), "SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url,
               "ANTHROPIC_API_KEY": REAL_KEY}  # fmt: skip
        first = start_operator(cluster, namespace, tmp_path / "state", log, **env)
        try:
            apply(cluster, namespace, agent_sprint(repo, agent_image))
            wait_for(lambda: (by_id(cluster, namespace, SPRINT).get("greet", {}).get("tokens") or {})
                     .get("source") == "proxy", timeout=300, what="live proxy usage")  # fmt: skip
        finally:
            stop_operator(first)
        before = len(standin.served)
        with operator_process(cluster, namespace, tmp_path / "state", log, **env):
            status = wait_terminal(cluster, namespace, SPRINT, timeout=900)
        served = list(standin.served)
    task = by_id(cluster, namespace, SPRINT)["greet"]
    assert status["phase"] == "Completed", (status.get("message"), task.get("reason"), task.get("error"))
    retries = [e["message"] for e in events_in(cluster, namespace) if e["reason"] == "TaskRetry"]
    assert task["attempt"] == 1 and 1 <= before < len(served), retries  # one attempt, metered on both sides
    expected = expected_usage(served)
    assert (task["tokens"]["source"], task["tokens"]["actual"]) == ("proxy", expected.total_tokens)
    assert task["tokens"]["agentReported"] == expected.total_tokens
    assert git("-C", str(repo), "show", "main:OUTPUT.md").startswith("done: ")
    assert REAL_KEY not in log.read_text()


def test_without_the_providers_key_the_sprint_fails_at_once_naming_the_variable(
    cluster: LocalCluster, namespace: str, tmp_path: Path, agent_image: str
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    env = {**config(tmp_path), "ANTHROPIC_API_KEY": ""}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env):
        apply(cluster, namespace, agent_sprint(repo, agent_image))
        status = wait_terminal(cluster, namespace, SPRINT, timeout=300)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["reason"]) == ("Failed", "MissingApiKey"), status  # before any branch
    assert "set ANTHROPIC_API_KEY in the operator's environment" in ready["message"]
    task = by_id(cluster, namespace, SPRINT).get("greet", {})
    assert task.get("phase") in (None, "Pending", "Ready") and not task.get("containerId"), task
    assert not podman("ps", "-a", "-q", *LABELS).strip()  # no container was started
