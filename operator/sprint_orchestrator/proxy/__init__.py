"""The metering LLM proxy: exact token usage from the wire, budgets, and no key in any container.

How a task container reaches a model API without a network or a secret:

    agent CLI --HTTP--> 127.0.0.1:4180 (forwarder, in the container) --Unix socket (bind-mounted)-->
    MeteringProxy (in the operator; adds the real key, meters, budgets) --HTTPS--> the provider

The lifecycle code opens one socket per task attempt (`MeteringProxy.open_task_socket`), bind-mounts
the socket's directory at `CONTAINER_SOCKET_DIR`, starts the agent under the forwarder
(`forwarder_command`) with `agent_environment()`, and reads `usage_for(...)` when the task ends.
"""

from __future__ import annotations

from pathlib import Path

from .ledger import TaskBudget
from .routing import DEFAULT_UPSTREAMS
from .server import MeteringProxy, ProxyLimits, UsageCallback
from .sockets import CONTAINER_PORT, CONTAINER_SOCKET_DIR, SOCKET_NAME, TaskKey

FORWARDER_SOURCE = Path(__file__).parent / "files" / "forwarder.py"
FORWARDER_IN_IMAGE = "/usr/local/bin/sprint-llm-forwarder"  # installed by hack/agent-image.sh
PLACEHOLDER_KEY = "sk-sprint-orchestrator-placeholder"  # the proxy replaces it; it grants nothing

__all__ = [
    "CONTAINER_PORT",
    "CONTAINER_SOCKET_DIR",
    "DEFAULT_UPSTREAMS",
    "FORWARDER_IN_IMAGE",
    "FORWARDER_SOURCE",
    "PLACEHOLDER_KEY",
    "SOCKET_NAME",
    "MeteringProxy",
    "ProxyLimits",
    "TaskBudget",
    "TaskKey",
    "UsageCallback",
    "agent_environment",
    "codex_provider_args",
    "forwarder_command",
]


def agent_environment(port: int = CONTAINER_PORT) -> dict[str, str]:
    """Environment for an agent CLI in the task container: proxied base URLs, placeholder keys, quiet."""
    base = f"http://127.0.0.1:{port}"
    return {
        "ANTHROPIC_BASE_URL": f"{base}/anthropic",
        "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        "OPENAI_BASE_URL": f"{base}/openai/v1",
        "OPENAI_API_KEY": PLACEHOLDER_KEY,
        "GOOGLE_GEMINI_BASE_URL": f"{base}/gemini",
        "GEMINI_API_KEY": PLACEHOLDER_KEY,
        "SPRINT_LLM_PORT": str(port),
        "SPRINT_LLM_SOCKET": f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def forwarder_command(agent_argv: list[str], port: int = CONTAINER_PORT) -> list[str]:
    """The container command: the forwarder listens, then becomes the agent (same PID, same exit code)."""
    socket = f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}"
    return ["python3", FORWARDER_IN_IMAGE, "--port", str(port), "--socket", socket, "--", *agent_argv]


def codex_provider_args(port: int = CONTAINER_PORT) -> list[str]:
    """`codex` options that send it through the forwarder: Codex ignores OPENAI_BASE_URL."""
    provider = (
        f'{{name="sprint-proxy",base_url="http://127.0.0.1:{port}/openai/v1",'
        'env_key="OPENAI_API_KEY",wire_api="responses"}'
    )
    return ["-c", f"model_providers.sprint-proxy={provider}", "-c", "model_provider=sprint-proxy"]
