"""The operator configuration: the PRD's environment configuration YAML, validated.

    orchestrator: {max_concurrent_sprints: 1, max_parallel_tasks_per_sprint: 5,
                   default_task_timeout: 3600s, default_token_budget: 1000000,
                   default_team: claude-code}
    git: {repository_url: '${REPO_URL}', main_branch: main,
          working_trees_path: null (the state directory's trees/)}
    containers: {runtime: podman, base_image: null (the agent image for agent teams), network_mode: none,
                 cleanup_on_completion: true}
    kaiban: {api_url: '${KAIBAN_API_URL}', board_template: sprint-template, webhook_url: '${WEBHOOK_URL}'}
    retention: {enabled: true, keep_sprints: 20, max_age_days: 30, git_maintenance: true,
                git_loose_objects: 250, git_packs: 10, git_prune_after: 1h}

String values expand `${VAR}` and `${VAR:-default}` from the `env` mapping passed in (this module never
reads os.environ). An unset variable without a default is an error naming the key path, except that an
optional key (one that may be null, e.g. kaiban.*, git.repository_url) whose whole value is `${VAR}`
becomes null. Durations accept 3600s, 60m, 1h, 1h30m or a number of seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from . import quantities
from .errors import InvalidInput
from .sourcefile import load_yaml
from .validators import describe_errors

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: Any) -> int:
    """Seconds of "3600s", "60m", "1h", "1h30m", 90 or "90"; ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like 3600s, 60m or 1h")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if not text or not match:
        raise ValueError(f"{value!r} is not a duration like 3600s, 60m or 1h")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


Seconds = Annotated[int, BeforeValidator(parse_duration), Field(ge=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrchestratorSection(Section):
    max_concurrent_sprints: int = Field(default=1, ge=1, le=100)
    max_parallel_tasks_per_sprint: int = Field(default=5, ge=1, le=50)
    default_task_timeout: Seconds = 3600
    default_token_budget: int = Field(default=1_000_000, ge=0)
    # The team of a Sprint that names none: a real agent CLI. demo (the stand-in) only when configured.
    default_team: Literal["claude-code", "codex", "gemini", "demo"] = "claude-code"
    # Roots under which a Sprint may name host paths (team.recipes, a local repository.url); the
    # project's examples are always allowed. Empty: nothing else.
    allowed_host_paths: list[str] = Field(default_factory=list, max_length=100)


class GitSection(Section):
    repository_url: str | None = None
    main_branch: str = Field(default="main", min_length=1)
    # The branches a Sprint's repository.mainBranch may name, per repository URL ("*": any other);
    # unset: main_branch only (branchpolicy.py).
    allowed_main_branches: dict[str, list[Annotated[str, Field(min_length=1, max_length=255)]]] = Field(
        default_factory=dict, max_length=1000
    )
    # Unset: {state directory}/trees, private to the operator (statedir.py); never /tmp by default.
    working_trees_path: str | None = Field(default=None, min_length=1)


SourceUrl = Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://[A-Za-z0-9._~:/@%+-]+$")]


class PackageSourcesSection(Section):
    """Where sprint image builds may fetch packages (runtime/images.py): none by default, no network."""

    apt: list[Annotated[str, Field(min_length=1, max_length=2048)]] = Field(
        default_factory=list, max_length=20
    )
    pip: list[Annotated[str, Field(min_length=1, max_length=2048)]] = Field(
        default_factory=list, max_length=20
    )


class ContainersSection(Section):
    runtime: Literal["podman", "pods"] = "podman"
    # Unset: the agent image (hack/agent-image.sh) for agent teams, the base image for the others.
    base_image: str | None = Field(default=None, min_length=1)
    # Limits of every task, gate and integration container whose Sprint sets none (both notations).
    default_memory: Annotated[int, BeforeValidator(quantities.memory_bytes)] = 4 << 30
    default_cpus: Annotated[int, BeforeValidator(quantities.nano_cpus)] = 2 * quantities.NANO
    default_pids: int = Field(default=512, ge=16, le=1_000_000)
    # The size cap of each container's workspace and /artifacts together (0: none; needs a root operator).
    default_disk: Annotated[int, BeforeValidator(quantities.disk_bytes_or_none)] = 2 << 30
    network_mode: str = Field(default="none", min_length=1)
    package_sources: PackageSourcesSection = PackageSourcesSection()
    cleanup_on_completion: bool = True
    # runtime: pods. The registry the nodes pull sprint images from (host:port; plain HTTP only when
    # registry_plain_http), the namespace of the task Pods, the address (host or host:port) the Pods
    # reach the operator's workspace endpoint on, and where that endpoint listens (host:port; default:
    # transfer_address, e.g. 0.0.0.0:8081 behind a Service).
    registry: str | None = Field(default=None, min_length=1)
    registry_plain_http: bool = False
    # The registry's credentials for pushing sprint images (and reading base images): a Docker config
    # JSON file, as a `kubernetes.io/dockerconfigjson` Secret mounted in the operator's Pod holds it.
    registry_auth_file: str | None = Field(default=None, min_length=1)
    # The Secret (type kubernetes.io/dockerconfigjson, in pods_namespace) the nodes pull with.
    image_pull_secret: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    pods_namespace: str = Field(default="default", min_length=1, max_length=63)
    transfer_address: str | None = Field(default=None, min_length=1)
    transfer_listen: str | None = Field(default=None, min_length=1)
    # The port of the metering proxy task Pods reach on transfer_address's host (and it listens on beside
    # transfer_listen's): 0 takes any free port (an operator process on the host); behind a Service, the
    # Service's port (the chart and manifests/ use 8082).
    proxy_port: int = Field(default=0, ge=0, le=65535)
    # The NetworkPolicy canary (runtime/canary.py): a port beside the proxy's that every Pod's policy
    # leaves out (0: any free port; behind a Service, the Service's port: 8084 in the chart and
    # manifests/). A Pod's command starts once the canary stops answering; still answering after
    # network_policy_wait, the Pod ends without running it (its CNI enforces no NetworkPolicy).
    canary_port: int = Field(default=0, ge=0, le=65535)
    network_policy_wait: Seconds = 60
    # runtime: pods. How long an image pull may fail (often transient) before the attempt ends as an
    # infrastructure failure; how long a Pod may be unschedulable before the Task says "no node fits".
    image_pull_grace: Seconds = 60
    unschedulable_report_after: Seconds = 120
    # runtime: pods. Warm gate Pods per sprint and kind of gate run (runtime/podpool.py): started while a
    # task runs, so its gate skips the Pod's start; each holds its requests while it waits. 0: none.
    warm_gate_pods: int = Field(default=0, ge=0, le=20)
    # Infrastructure retries of one task (evicted, node lost, image pull failed: retry.py), beside and not
    # counted against the Sprint's maxAttempts.
    infrastructure_retries: int = Field(default=5, ge=0, le=100)


class KaibanSection(Section):
    api_url: str | None = None
    board_template: str | None = "sprint-template"
    webhook_url: str | None = None


class RetentionSection(Section):
    """What the operator keeps of finished sprints (retention.py): the run data (artifacts, logs, agent
    sessions), worktrees, task branches and salvage refs of the `keep_sprints` most recently finished
    Sprints, none finished more than `max_age_days` ago; a running sprint's data is never touched. What a
    deleted Sprint left goes by `max_age_days` alone. git_maintenance: `git gc` on a repository's
    clone after a sprint ends, when due and none of that repository's sprints is active."""

    enabled: bool = True
    keep_sprints: int = Field(default=20, ge=1, le=100_000)
    max_age_days: int = Field(default=30, ge=1, le=36_500)
    git_maintenance: bool = True
    # Past this many loose objects they go into a new pack; past this many packs, one full git gc (git's
    # own defaults, 6,700 and 50, suit a person's clone; the operator writes small objects every sprint).
    git_loose_objects: int = Field(default=250, ge=0, le=1_000_000)
    git_packs: int = Field(default=10, ge=0, le=1000)  # 0: a full gc whenever maintenance runs
    # Unreachable git objects younger than this stay through maintenance (a ref may be on its way).
    git_prune_after: Seconds = 3600


class OrchestratorConfig(Section):
    orchestrator: OrchestratorSection = OrchestratorSection()
    git: GitSection = GitSection()
    containers: ContainersSection = ContainersSection()
    kaiban: KaibanSection = KaibanSection()
    retention: RetentionSection = RetentionSection()


def _optional(section: str, key: str) -> bool:
    model = OrchestratorConfig.model_fields.get(section)
    fields = getattr(model.annotation, "model_fields", {}) if model else {}
    return key in fields and fields[key].default is None


def _expand(value: str, where: str, env: Mapping[str, str], problems: list[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(f"{where}: environment variable {name} is not set (use ${{{name}:-default}})")
        return ""

    return _VAR.sub(substitute, value)


def expand(data: Mapping[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Expand `${VAR}` in the section values; returns the result and the unset-variable problems."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            out[section] = values
            continue
        out[section] = {}
        for key, value in values.items():
            if isinstance(value, str):
                match = _VAR.fullmatch(value)
                if match and match.group(2) is None and match.group(1) not in env and _optional(section, key):
                    value = None
                else:
                    value = _expand(value, f"{section}.{key}", env, problems)
            out[section][key] = value
    return out, problems


def config_from_mapping(data: Any, env: Mapping[str, str], source: str = "config") -> OrchestratorConfig:
    """Validate an already parsed configuration document; problems are prefixed with `source`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    expanded, problems = expand(data, env)
    try:
        config = OrchestratorConfig.model_validate(expanded)
    except ValidationError as exc:
        problems += describe_errors(exc, "")
        config = None
    if problems or config is None:
        lines = [f"{source}: {line}" for line in problems]
        raise InvalidInput(f"{source}: invalid configuration", lines)
    return config


def load_config(path: Path | None, env: Mapping[str, str]) -> OrchestratorConfig:
    """The configuration in `path` (defaults for every missing key), or the defaults when path is None."""
    if path is None:
        return OrchestratorConfig()
    return config_from_mapping(load_yaml(path), env, str(path))
