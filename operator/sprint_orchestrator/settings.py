"""Process settings: the one place that reads the environment.

Everything else receives a `Settings` object explicitly. The PRD's configuration YAML (orchestrator,
git, containers, kaiban) is loaded by `config.load_config`; this object adds what a running process
needs (where state lives, which ports, which namespaces).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .statedir import ROOT_STATE_DIR, default_state_dir

ENV_PREFIX = "SPRINT_ORCHESTRATOR_"
DEFAULT_LLM_UPSTREAMS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
API_KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


@dataclass(frozen=True)
class Settings:
    config_path: Path | None = None
    state_dir: Path = ROOT_STATE_DIR  # from_env picks the default for the user (statedir.py)
    namespaces: tuple[str, ...] = ()
    podman_url: str | None = None
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"  # 0.0.0.0 only where asked (in a Pod: the manifests set it)
    health_port: int = 0
    diff_port: int = 0  # the dashboard's internal diff endpoint (handlers/diffs.py); 0: off
    diff_address: str = "127.0.0.1"
    diff_token_file: Path | None = None
    base_image: str = "localhost/sprint-orchestrator/base:bookworm"
    agent_image: str = "localhost/sprint-orchestrator/agent:bookworm"  # hack/agent-image.sh
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    llm_upstreams: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LLM_UPSTREAMS))
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    lease_namespace: str = ""  # one active replica: hold a Lease there (lease.py); "" = no Lease
    lease_seconds: int = 15
    lease_name: str = "sprint-orchestrator"  # one per install (two releases in one namespace differ)
    faults: str = ""  # tests only: fault points that SIGKILL the operator (faults.py); never in production
    config: Any = None  # config.OrchestratorConfig, loaded by load()

    @property
    def repository_url(self) -> str | None:
        """The config file's git.repository_url: the repository of a Sprint that names none."""
        url = getattr(getattr(self.config, "git", None), "repository_url", None)
        return str(url) if url else None

    @property
    def trees_dir(self) -> Path:
        """The config file's git.working_trees_path when it names one, else under state_dir."""
        path = getattr(getattr(self.config, "git", None), "working_trees_path", None)
        return Path(path) if path else self.state_dir / "trees"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def with_namespaces(self, namespaces: tuple[str, ...]) -> Settings:
        return replace(self, namespaces=namespaces)


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from environment variables (SPRINT_ORCHESTRATOR_*) and the config file."""
    env = dict(os.environ if env is None else env)

    def get(name: str, default: str | None = None) -> str | None:
        return env.get(ENV_PREFIX + name, default)

    config_path = get("CONFIG")
    settings = Settings(
        config_path=Path(config_path) if config_path else None,
        state_dir=Path(get("STATE_DIR") or default_state_dir(env, os.geteuid())),
        namespaces=tuple(n for n in (get("NAMESPACES", "") or "").split(",") if n),
        podman_url=get("PODMAN_URL"),
        metrics_port=int(get("METRICS_PORT", "0") or 0),
        metrics_address=get("METRICS_ADDRESS", "127.0.0.1") or "127.0.0.1",
        health_port=int(get("HEALTH_PORT", "0") or 0),
        diff_port=int(get("DIFF_PORT", "0") or 0),
        diff_address=get("DIFF_ADDRESS", "127.0.0.1") or "127.0.0.1",
        diff_token_file=Path(token) if (token := get("DIFF_TOKEN_FILE")) else None,
        base_image=get("BASE_IMAGE", Settings.base_image) or Settings.base_image,
        agent_image=get("AGENT_IMAGE", Settings.agent_image) or Settings.agent_image,
        api_keys={provider: env[var] for provider, var in API_KEY_VARIABLES.items() if env.get(var)},
        llm_upstreams={
            provider: get(f"{provider.upper()}_URL", default) or default
            for provider, default in DEFAULT_LLM_UPSTREAMS.items()
        },
        env=env,
        faults=get("FAULTS", "") or "",
        lease_namespace=get("LEASE_NAMESPACE", "") or "",
        lease_seconds=int(get("LEASE_SECONDS", "15") or 15),
        lease_name=get("LEASE_NAME", "") or Settings.lease_name,
    )
    return load(settings)


def in_cluster_api_server(env: Mapping[str, str] | None = None) -> str | None:
    """The API server as client-go's in-cluster config finds it (KUBERNETES_SERVICE_HOST/PORT, set by
    the kubelet in every Pod), not by the DNS name kubernetes.default.svc: a cluster may have no DNS."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def load(settings: Settings) -> Settings:
    from .config import load_config

    return replace(settings, config=load_config(settings.config_path, settings.env))
