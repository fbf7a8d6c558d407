"""The real Claude Code CLI in a network-less task container, through the forwarder and the proxy.

The stand-in upstream scripts the session (read TASK.md, write OUTPUT.md, finish). Checked: the file
lands in the workspace and on the task branch, the proxy's usage equals what the stand-in served token
for token, the CLI's own stream-json agrees, and neither `podman inspect` nor any log holds the key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from _proxy import REAL_KEY, counts, expected_usage
from _standin_anthropic import AnthropicStandIn, OpenAIStandIn
from sprint_orchestrator.proxy import (
    CONTAINER_SOCKET_DIR,
    MeteringProxy,
    TaskBudget,
    agent_environment,
    codex_provider_args,
    forwarder_command,
)
from sprint_orchestrator.usage import parse

pytestmark = pytest.mark.podman

REPO = Path(__file__).resolve().parent.parent
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "hack" / "containers.conf")}
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*",
}  # fmt: skip
TASK_LINE = "Greet the sprint with the words: hello from task t1"
CLAUDE = ["claude", "-p", "Do the task in TASK.md.", "--output-format", "stream-json", "--verbose",
          "--model", "claude-sonnet-4-5", "--permission-mode", "acceptEdits"]  # fmt: skip


@pytest.fixture(scope="module")
def agent_image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: run hack/setup-podman.sh")
    out = ""
    for script in ("base-image.sh", "agent-image.sh"):
        done = subprocess.run(["bash", str(REPO / "hack" / script)], env=PODMAN_ENV, capture_output=True,
                              text=True, timeout=1800, check=False)  # fmt: skip
        assert done.returncode == 0, f"hack/{script} failed:\n{done.stderr[-3000:]}"
        out = done.stdout
    return out.strip().splitlines()[-1]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A real repo with TASK.md on main, and the task's worktree on branch task/s1/t1, owned by uid 1000."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "TASK.md").write_text(f"{TASK_LINE}\n\nWrite OUTPUT.md.\n")
    git(repo, "add", "TASK.md")
    git(repo, "commit", "-q", "-m", "task")
    tree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "task/s1/t1", str(tree), "main")
    shutil.chown(tree, 1000, 1000)
    for path in tree.rglob("*"):
        os.chown(path, 1000, 1000, follow_symlinks=False)
    yield tree


@pytest.fixture
async def standin() -> AsyncIterator[AnthropicStandIn]:
    server = AnthropicStandIn()
    await server.start()
    yield server
    await server.stop()


async def podman(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "podman", *args, env=PODMAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def run_agent(
    image: str, name: str, workspace: Path, socket: Path, agent: list[str] = CLAUDE
) -> tuple[int, str, str]:
    env = [f"--env={k}={v}" for k, v in agent_environment().items()]
    return await podman(
        "run", f"--name={name}", "--network=none", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        "--init", "--user=1000:1000", "--pids-limit=512", "--memory=2g",
        f"--volume={workspace}:/workspace", f"--volume={socket.parent}:{CONTAINER_SOCKET_DIR}:ro",
        "--workdir=/workspace", "--label=sprintorchestrator.dev/sprint=s1",
        "--label=sprintorchestrator.dev/task=t1", *env, image, *forwarder_command(agent),
        timeout=300,
    )  # fmt: skip


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"proxy-test-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=PODMAN_ENV, capture_output=True, check=False)


async def test_claude_code_in_a_networkless_container_is_metered_exactly(
    agent_image: str, workspace: Path, standin: AnthropicStandIn, tmp_path: Path,
    container_name: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    upstreams, keys = {"anthropic": standin.url}, {"anthropic": REAL_KEY}
    async with MeteringProxy(upstreams, keys, run_dir=tmp_path / "run") as proxy:
        socket = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=1_000_000))
        code, stdout, stderr = await run_agent(agent_image, container_name, workspace, socket)
        usage = proxy.usage_for("s1", "t1", 0)
    assert code == 0, f"claude exited {code}: {stderr[-2000:]}\n{stdout[-2000:]}"
    assert (workspace / "OUTPUT.md").read_text() == f"done: {TASK_LINE}\n"
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "task t1 (committed by the operator)")
    assert git(workspace, "show", "task/s1/t1:OUTPUT.md") == f"done: {TASK_LINE}\n"

    assert len(standin.served) >= 3 and not usage.partial
    assert counts(usage) == counts(expected_usage(standin.served))
    own = parse(stdout, "claude-stream-json")
    assert counts(own) == counts(usage)

    _, inspect, _ = await podman("container", "inspect", container_name)
    _, logs_out, logs_err = await podman("logs", container_name)
    for text in (inspect, logs_out, logs_err, stdout, stderr, caplog.text):
        assert REAL_KEY not in text
    assert all(key == REAL_KEY for key in standin.seen_keys)


async def test_a_spent_budget_stops_claude_code_cleanly_with_the_providers_error(
    agent_image: str, workspace: Path, standin: AnthropicStandIn, tmp_path: Path, container_name: str
) -> None:
    async with MeteringProxy(
        {"anthropic": standin.url}, {"anthropic": REAL_KEY}, run_dir=tmp_path / "r"
    ) as proxy:
        socket = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=150))
        code, stdout, stderr = await run_agent(agent_image, container_name, workspace, socket)
        exceeded = proxy.budget_exceeded("s1", "t1", 0)
        usage = proxy.usage_for("s1", "t1", 0)
    assert exceeded and len(standin.served) == 1
    assert counts(usage) == counts(expected_usage(standin.served))
    assert "token budget of task t1 is spent" in stdout + stderr
    assert not (workspace / "OUTPUT.md").exists()
    assert code != 0 or '"is_error":true' in stdout.replace(" ", "")


async def test_codex_in_a_networkless_container_is_metered_exactly(
    agent_image: str, workspace: Path, tmp_path: Path, container_name: str
) -> None:
    standin = OpenAIStandIn()
    await standin.start()
    codex = ["codex", "exec", "--json", "--skip-git-repo-check", *codex_provider_args(), "-m", "gpt-test",
             "Say hello."]  # fmt: skip
    try:
        async with MeteringProxy(
            {"openai": standin.url}, {"openai": REAL_KEY}, run_dir=tmp_path / "r"
        ) as proxy:
            socket = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
            code, stdout, stderr = await run_agent(agent_image, container_name, workspace, socket, codex)
            usage = proxy.usage_for("s1", "t1", 0)
    finally:
        await standin.stop()
    assert code == 0, f"codex exited {code}: {stderr[-2000:]}\n{stdout[-2000:]}"
    assert len(standin.served) >= 1 and not usage.partial
    assert counts(usage) == counts(expected_usage(standin.served))
    own = parse(stdout, "codex-json")  # Codex names no model: compare the totals
    assert counts(own)["total_tokens"] == usage.total_tokens
    assert (own.input_tokens, own.cache_read_tokens, own.output_tokens) == (
        usage.input_tokens, usage.cache_read_tokens, usage.output_tokens)  # fmt: skip
    assert all(key == f"Bearer {REAL_KEY}" for key in standin.seen_keys)
