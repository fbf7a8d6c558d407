"""The real Gemini CLI in a network-less task container, through the forwarder and the proxy's Gemini route.

The agent image's Node is the wheel's Node 24 and every pinned CLI runs in it. The gemini team's own
command and environment (`TEAMS["gemini"]`) run against the Gemini API stand-in, which scripts the
session (read_file TASK.md, write_file OUTPUT.md, finish) over SSE streams. Checked: the file lands in
the workspace, the proxy's usage equals what the stand-in served token for token, the CLI's own
stream-json agrees, a spent budget stops the CLI at once, and the key is nowhere in the container.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from _proxy import REAL_KEY, counts, expected_usage
from _standin_gemini import GeminiStandIn
from sprint_orchestrator.model import TaskDefinition, TeamConfig
from sprint_orchestrator.proxy import CONTAINER_SOCKET_DIR, MeteringProxy, TaskBudget
from sprint_orchestrator.teams import TEAMS
from sprint_orchestrator.usage import parse
from test_proxy_podman import TASK_LINE, agent_image, container_name, git, podman, workspace

pytestmark = pytest.mark.podman
__all__ = ["agent_image", "container_name", "workspace"]  # fixtures used here by name

TASK = TaskDefinition(id="t1", title="Greet", description="Write OUTPUT.md.")
MODEL = "gemini-2.5-flash"
LABELS = {"node": "node --version", "gemini-cli": "gemini --version", "claude-code": "claude --version",
          "codex": "codex --version"}  # fmt: skip


@pytest.fixture
async def standin() -> AsyncIterator[GeminiStandIn]:
    server = GeminiStandIn()
    await server.start()
    yield server
    await server.stop()


async def run_gemini(image: str, name: str, workspace: Path, socket: Path) -> tuple[int, str, str]:
    launch = TEAMS["gemini"](TASK, TeamConfig(type="gemini", model=MODEL))
    env = [f"--env={k}={v}" for k, v in {**launch.environment, "HOME": "/tmp"}.items()]
    return await podman(
        "run", f"--name={name}", "--network=none", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        "--init", "--user=1000:1000", "--pids-limit=512", "--memory=2g", "--read-only",
        "--tmpfs=/tmp:mode=1777",
        f"--volume={workspace}:/workspace", f"--volume={socket.parent}:{CONTAINER_SOCKET_DIR}:ro",
        "--workdir=/workspace", "--label=sprintorchestrator.dev/sprint=s1",
        "--label=sprintorchestrator.dev/task=t1", *env, image, *launch.command,
        timeout=300,
    )  # fmt: skip


async def test_the_agent_image_runs_node_24_and_every_pinned_cli(agent_image: str) -> None:
    code, out, err = await podman("image", "inspect", agent_image, "--format", "{{json .Labels}}")
    labels = json.loads(out)
    for label, command in LABELS.items():
        code, out, err = await podman("run", "--rm", "--network=none", "--user=1000:1000", "--env=HOME=/tmp",
                                      agent_image, "sh", "-c", command)  # fmt: skip
        assert code == 0, f"{command}: {err[-1000:]}"
        assert labels[f"sprintorchestrator.dev/{label}"] in out, (command, out)
    assert labels["sprintorchestrator.dev/node"].startswith("24.")


async def test_the_gemini_cli_in_a_networkless_container_is_metered_exactly(
    agent_image: str, workspace: Path, standin: GeminiStandIn, tmp_path: Path,
    container_name: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    async with MeteringProxy(
        {"gemini": standin.url}, {"gemini": REAL_KEY}, run_dir=tmp_path / "run"
    ) as proxy:
        socket = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=1_000_000))
        code, stdout, stderr = await run_gemini(agent_image, container_name, workspace, socket)
        usage = proxy.usage_for("s1", "t1", 0)
    assert code == 0, f"gemini exited {code}: {stderr[-2000:]}\n{stdout[-2000:]}"
    assert (workspace / "OUTPUT.md").read_text() == f"done: {TASK_LINE}\n"
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "task t1 (committed by the operator)")
    assert git(workspace, "show", "task/s1/t1:OUTPUT.md") == f"done: {TASK_LINE}\n"

    assert len(standin.served) >= 3 and all(p.endswith("?alt=sse") for p in standin.paths)
    assert counts(usage) == counts(expected_usage(standin.served)) and not usage.partial
    assert usage.reasoning_tokens == sum(s.reasoning_tokens or 0 for s in standin.served) > 0
    own = parse(stdout, "gemini-stream-json")  # the CLI's own report: thoughts inside output
    assert counts(own) == counts(usage)

    _, inspect, _ = await podman("container", "inspect", container_name)
    _, logs_out, logs_err = await podman("logs", container_name)
    for text in (inspect, logs_out, logs_err, stdout, stderr, caplog.text):
        assert REAL_KEY not in text
    assert standin.seen_keys and all(key == REAL_KEY for key in standin.seen_keys)


async def test_a_spent_budget_stops_the_gemini_cli_with_googles_error(
    agent_image: str, workspace: Path, standin: GeminiStandIn, tmp_path: Path,
    container_name: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="sprint_orchestrator.proxy")
    async with MeteringProxy({"gemini": standin.url}, {"gemini": REAL_KEY}, run_dir=tmp_path / "r") as proxy:
        socket = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=500))
        code, stdout, _ = await run_gemini(agent_image, container_name, workspace, socket)
        exceeded = proxy.budget_exceeded("s1", "t1", 0)
        usage = proxy.usage_for("s1", "t1", 0)
    assert exceeded and len(standin.served) == 1 and code != 0
    assert counts(usage) == counts(expected_usage(standin.served))
    assert "token budget of task t1 is spent" in stdout
    assert '"status":"error"' in stdout.replace(" ", "")
    assert not (workspace / "OUTPUT.md").exists()
    refused = [r for r in caplog.records if r.getMessage().startswith("refused POST /gemini/")]
    assert 1 <= len(refused) <= 3  # read as a terminal quota error: no minutes of retries
