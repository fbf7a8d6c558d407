"""The PRD sprint definition <-> Sprint manifest mapping, and errors that name PRD key paths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sprint_orchestrator import API_VERSION
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.manifest import dns_name, validate_sprint_manifest
from sprint_orchestrator.model import validate_sprint_spec
from sprint_orchestrator.prd import manifest_from_prd, prd_from_spec, prd_path, sprint_from_prd, validate_prd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def prd(**fields: Any) -> dict[str, Any]:
    return {
        "sprint_id": "Sprint_7",
        "sprint_name": "Seven",
        "tasks": [{"task_id": "a", "title": "A"}, {"task_id": "b", "title": "B", "dependencies": ["a"]}],
        **fields,
    }


def problems(data: Any) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        validate_prd(data)
    return info.value.problems


def test_every_prd_field_maps_to_its_spec_field() -> None:
    data = prd(
        description="d",
        container_config={
            "base_image": "img",
            "dependencies": ["apt:git", "pip:pytest==8"],
            "environment_vars": {"A": "1"},
            "resource_limits": {"cpus": 2, "memory": "1Gi", "pids": 64, "timeout_seconds": 60},
        },
        sprint_success_criteria=["ok"],
        integration_tests=["make test"],
        max_parallel_tasks=2,
    )
    data["tasks"][0].update(
        description="x",
        requirements=["r"],
        success_criteria=["s"],
        priority="high",
        estimated_tokens=10,
        files_to_modify=["a.py"],
        test_requirements=["pytest"],
    )
    spec = sprint_from_prd(data)
    assert spec["sprintId"] == "Sprint_7" and spec["displayName"] == "Seven" and spec["description"] == "d"
    assert spec["container"] == {
        "baseImage": "img",
        "dependencies": ["apt:git", "pip:pytest==8"],
        "environment": {"A": "1"},
        "resourceLimits": {"cpus": 2.0, "memory": "1Gi", "pids": 64, "timeoutSeconds": 60},
    }
    assert spec["successCriteria"] == ["ok"] and spec["integrationTests"] == ["make test"]
    assert spec["maxParallelTasks"] == 2
    assert spec["tasks"][0] == {
        "id": "a",
        "title": "A",
        "description": "x",
        "requirements": ["r"],
        "successCriteria": ["s"],
        "priority": "high",
        "estimatedTokens": 10,
        "filesToModify": ["a.py"],
        "testRequirements": ["pytest"],
    }
    assert spec["tasks"][1] == {"id": "b", "title": "B", "dependencies": ["a"]}


def test_manifest_derives_a_dns_name_and_keeps_the_sprint_id() -> None:
    manifest = manifest_from_prd(prd(), namespace="team-a")
    assert manifest["apiVersion"] == API_VERSION and manifest["kind"] == "Sprint"
    assert manifest["metadata"] == {"name": "sprint-7", "namespace": "team-a"}
    assert manifest["spec"]["sprintId"] == "Sprint_7"
    name, spec = validate_sprint_manifest(manifest)
    assert name == "sprint-7" and spec.resolved_id(name) == "Sprint_7"


def test_manifest_overrides_say_what_the_prd_cannot() -> None:
    manifest = manifest_from_prd(prd(), overrides={"team": {"type": "demo", "recipes": "/r"}})
    assert manifest["spec"]["team"] == {"type": "demo", "recipes": "/r"}
    with pytest.raises(InvalidInput) as info:
        manifest_from_prd(prd(), overrides={"team": {"type": "command"}})
    assert info.value.problems == ["spec.team.command: required when type is 'command'"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            prd(tasks=[{"task_id": "a", "title": "A"}, {"task_id": "a..b", "title": "B"}]),
            "tasks[1].task_id: 'a..b'",
        ),
        (prd(tasks=[{"task_id": "a"}]), "tasks[0].title: required field is missing"),
        (prd(tasks=[{"title": "A"}]), "tasks[0].task_id: required field is missing"),
        (prd(tasks=[{"task_id": "a", "title": "A", "estimated_tokens": -1}]), "tasks[0].estimated_tokens: "),
        (
            prd(tasks=[{"task_id": "a", "title": "A", "files_to_modify": ["/x"]}]),
            "tasks[0].files_to_modify[0]: '/x'",
        ),
        (
            prd(tasks=[{"task_id": "a", "title": "A", "dependencies": ["zz"]}]),
            "tasks[0].dependencies[0]: 'zz'",
        ),
        (
            prd(
                tasks=[
                    {"task_id": "a", "title": "A", "dependencies": ["b"]},
                    {"task_id": "b", "title": "B", "dependencies": ["a"]},
                ]
            ),
            "tasks: dependency cycle a -> b -> a",
        ),
        (
            prd(container_config={"resource_limits": {"timeout_seconds": 0}}),
            "container_config.resource_limits.timeout_seconds: ",
        ),
        (
            prd(container_config={"environment_vars": {"1A": "x"}}),
            "container_config.environment_vars: 1A not valid",
        ),
        (prd(max_parallel_tasks=0), "max_parallel_tasks: Input should be greater than or equal to 1"),
        (prd(tasks=[]), "tasks: List should have at least 1 item"),
        (prd(sprint_id="a b"), "sprint_id: 'a b' is not safe as a git ref component"),
        (prd(epoch=3), "epoch: unknown field"),
        ({"tasks": []}, "sprint_id: required field is missing"),
        ([], "expected a sprint definition (a JSON object), got list"),
    ],
)
def test_problems_name_the_prd_key_path(data: Any, expected: str) -> None:
    found = problems(data)
    assert any(line.startswith(expected) for line in found), found


def test_spec_paths_translate_to_prd_paths() -> None:
    assert prd_path(("tasks", 2, "id")) == ("tasks", 2, "task_id")
    assert prd_path(("container", "resourceLimits", "timeoutSeconds")) == (
        "container_config",
        "resource_limits",
        "timeout_seconds",
    )
    assert prd_path(("successCriteria", 0)) == ("sprint_success_criteria", 0)
    assert prd_path(("container", "environment", "baseImage")) == (
        "container_config",
        "environment_vars",
        "baseImage",
    )


def test_the_demo_prd_json_is_the_demo_sprint_yaml() -> None:
    from_json = manifest_from_prd(json.loads((EXAMPLES / "sprint.json").read_text()))
    from_yaml = yaml.safe_load((EXAMPLES / "sprint.yaml").read_text())
    json_spec, yaml_spec = validate_sprint_spec(from_json["spec"]), validate_sprint_spec(from_yaml["spec"])
    assert from_json["metadata"]["name"] == from_yaml["metadata"]["name"]
    assert json_spec.tasks == yaml_spec.tasks
    assert json_spec.integration_tests == yaml_spec.integration_tests
    assert json_spec.container == yaml_spec.container


def test_prd_from_spec_round_trips_and_leaves_out_what_the_prd_cannot_hold() -> None:
    spec = validate_sprint_spec(yaml.safe_load((EXAMPLES / "sprint.yaml").read_text())["spec"])
    back = prd_from_spec(spec, "textstats-1")
    assert back["sprint_id"] == "textstats-1"
    assert "team" not in back and "policy" not in back
    assert back["tasks"][3]["task_id"] == "report"
    assert validate_prd(back).tasks == spec.tasks


@given(st.text(min_size=1, max_size=80).filter(lambda s: any(c.isascii() and c.isalnum() for c in s)))
def test_dns_name_is_a_dns_label(text: str) -> None:
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", dns_name(text))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"apiVersion": "v1", "kind": "Sprint", "metadata": {"name": "a"}, "spec": {}},
            "apiVersion: expected",
        ),
        (
            {"apiVersion": API_VERSION, "kind": "Task", "metadata": {"name": "a"}, "spec": {}},
            "kind: expected 'Sprint'",
        ),
        (
            {"apiVersion": API_VERSION, "kind": "Sprint", "metadata": {"name": "A_b"}},
            "metadata.name: 'A_b' is not",
        ),
        (
            {"apiVersion": API_VERSION, "kind": "Sprint", "metadata": {"name": "a"}},
            "spec: required field is missing",
        ),
        (
            {
                "apiVersion": API_VERSION,
                "kind": "Sprint",
                "metadata": {"name": "a." + "b" * 70},
                "spec": {"tasks": [{"id": "t", "title": "T"}]},
            },
            "metadata.name: 'a.bbb",
        ),
    ],
)
def test_manifest_problems(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_sprint_manifest(doc)
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems
