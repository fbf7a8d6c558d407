"""The operator configuration: the PRD's YAML, ${ENV} expansion, durations, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprint_orchestrator.config import OrchestratorConfig, load_config, parse_duration
from sprint_orchestrator.errors import InvalidInput

PRD_CONFIG = """\
orchestrator:
  max_concurrent_sprints: 1
  max_parallel_tasks_per_sprint: 5
  default_task_timeout: 3600s
  default_token_budget: 1000000

git:
  repository_url: '${REPO_URL}'
  main_branch: 'main'
  working_trees_path: '/tmp/orchestrator/trees'

containers:
  runtime: 'podman'
  base_image: 'claude-code:dangerous-mode'
  network_mode: 'none'
  cleanup_on_completion: true

kaiban:
  api_url: '${KAIBAN_API_URL}'
  board_template: 'sprint-template'
  webhook_url: '${WEBHOOK_URL}'
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_config(path, env or {})
    return [line.removeprefix(f"{path}: ") for line in info.value.problems]


def test_the_prd_configuration_loads(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, PRD_CONFIG), {"REPO_URL": "/srv/repo.git", "WEBHOOK_URL": "http://h"}
    )
    assert config.git.repository_url == "/srv/repo.git"
    assert config.orchestrator.default_task_timeout == 3600
    assert config.orchestrator.default_token_budget == 1_000_000
    assert config.containers.network_mode == "none"
    assert config.kaiban.webhook_url == "http://h"
    assert config.kaiban.api_url is None  # optional key whose whole value is an unset ${VAR}


def test_no_file_means_the_defaults() -> None:
    config = load_config(None, {})
    assert config == OrchestratorConfig()
    assert config.orchestrator.max_parallel_tasks_per_sprint == 5
    assert config.git.working_trees_path is None  # {state directory}/trees, never /tmp by default


def test_missing_keys_take_their_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "orchestrator: {default_task_timeout: 1h30m}\n"), {})
    assert config.orchestrator.default_task_timeout == 5400
    assert config.containers.runtime == "podman"


def test_defaults_and_embedded_variables_expand(tmp_path: Path) -> None:
    text = "git: {repository_url: 'file://${HOME_DIR}/r', main_branch: '${BRANCH:-trunk}'}\n"
    config = load_config(write(tmp_path, text), {"HOME_DIR": "/h"})
    assert config.git.repository_url == "file:///h/r"
    assert config.git.main_branch == "trunk"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "containers: {network_mode: '${NET}'}",
            "containers.network_mode: environment variable NET is not set",
        ),
        ("git: {repository_url: 'x/${R}'}", "git.repository_url: environment variable R is not set"),
        (
            "orchestrator: {default_task_timeout: soon}",
            "orchestrator.default_task_timeout: 'soon' is not a duration",
        ),
        (
            "orchestrator: {default_task_timeout: 0}",
            "orchestrator.default_task_timeout: Input should be greater",
        ),
        ("orchestrator: {max_parallel_task: 3}", "orchestrator.max_parallel_task: unknown field"),
        ("containers: {runtime: docker}", "containers.runtime: Input should be 'podman' or 'pods'"),
        ("slack: {}", "slack: unknown field"),
        ("- a list", "expected a mapping of sections, got list"),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(line.startswith(expected) for line in found), found


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "git:\n  main_branch: [\n")
    with pytest.raises(InvalidInput) as info:
        load_config(path, {})
    assert info.value.problems[0].startswith(f"{path}:3:1: invalid YAML")


@pytest.mark.parametrize(
    ("value", "seconds"), [("3600s", 3600), ("60m", 3600), ("1h", 3600), (90, 90), ("90", 90)]
)
def test_parse_duration(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "1d", "h", "-5s", True, "1.5h"])
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_in_a_pod_the_api_server_is_found_by_the_service_environment_not_by_dns() -> None:
    from sprint_orchestrator.settings import in_cluster_api_server

    assert in_cluster_api_server(
        {"KUBERNETES_SERVICE_HOST": "10.96.7.1", "KUBERNETES_SERVICE_PORT": "443"}
    ) == ("https://10.96.7.1:443")
    assert in_cluster_api_server(
        {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    ) == ("https://[fd00::1]:443")
    assert in_cluster_api_server({}) is None


def test_the_pods_runtime_keys_are_validated_by_name() -> None:
    config = OrchestratorConfig.model_validate(
        {"containers": {"runtime": "pods", "registry_plain_http": True, "transfer_listen": "0.0.0.0:8081"}}
    )
    assert config.containers.transfer_listen == "0.0.0.0:8081" and config.containers.registry_plain_http
    with pytest.raises(ValueError, match="transfer_listen"):
        OrchestratorConfig.model_validate({"containers": {"transfer_listen": ""}})
