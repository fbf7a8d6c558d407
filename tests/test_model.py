"""The Sprint/Task models: valid specs round-trip, invalid ones fail with one key-path line per problem."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.model import (
    SprintSpec,
    TaskSpec,
    task_resource_name,
    task_spec_for,
    validate_sprint_spec,
    validate_task_spec,
)
from sprint_orchestrator.status import SprintStatus, TaskStatus, parse_sprint_status, parse_task_status
from sprint_orchestrator.validators import (
    ID_PATTERN,
    PATH_PATTERN,
    check_safe_id,
    key_path,
    path_problem,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sprint.yaml"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def spec(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"tasks": list(tasks), **fields}


def task(id: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "title": f"Task {id}", "dependencies": list(deps), **fields}


def problems(data: Any) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        validate_sprint_spec(data)
    return info.value.problems


def test_the_demo_sprint_is_valid() -> None:
    sprint = validate_sprint_spec(yaml.safe_load(EXAMPLE.read_text())["spec"])
    assert [t.id for t in sprint.tasks] == ["words", "lines", "chars", "report", "cli", "docs"]
    assert sprint.task("report").dependencies == ["words", "lines", "chars"]
    assert sprint.team.type == "demo"


def test_dump_is_camel_case_and_round_trips() -> None:
    sprint = validate_sprint_spec(yaml.safe_load(EXAMPLE.read_text())["spec"])
    dumped = sprint.dump()
    assert dumped["maxParallelTasks"] == 3
    assert dumped["tasks"][0]["filesToModify"] == ["textstats/words.py", "tests/test_words.py"]
    assert dumped["container"]["resourceLimits"]["timeoutSeconds"] == 600
    assert "sprintId" not in dumped
    assert SprintSpec.model_validate(dumped) == sprint


def test_snake_case_input_is_accepted_and_defaults_apply() -> None:
    sprint = validate_sprint_spec({"max_parallel_tasks": 2, "tasks": [task("a", estimated_tokens=5)]})
    assert sprint.max_parallel_tasks == 2
    assert sprint.tasks[0].estimated_tokens == 5
    assert sprint.tasks[0].priority == "medium"
    assert sprint.policy.max_attempts == 3
    assert sprint.policy.on_integration_failure == "bisect"
    assert sprint.resolved_id("my-sprint") == "my-sprint"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (spec(task("a"), task("a..b")), "spec.tasks[1].id: 'a..b' is not safe as a git ref component"),
        (spec(task("x.lock")), "spec.tasks[0].id: 'x.lock' is not safe as a git ref component"),
        (spec(task("-a")), "spec.tasks[0].id: '-a' is not safe as a git ref component"),
        (spec(task("a/b")), "spec.tasks[0].id: 'a/b' is not safe as a git ref component"),
        (spec(task("a" * 64)), f"spec.tasks[0].id: '{'a' * 64}' is longer than 63 characters"),
        (spec(task("a"), sprintId="s p"), "spec.sprintId: 's p' is not safe as a git ref component"),
        (spec(task("a"), task("a")), "spec.tasks[1].id: duplicate task id 'a' (also tasks[0])"),
        (spec(task("a", "zz")), "spec.tasks[0].dependencies[0]: 'zz' is not the id of a task in this sprint"),
        (spec(task("a", "a")), "spec.tasks[0].dependencies[0]: task 'a' cannot depend on itself"),
        (spec(task("b"), task("a", "b", "b")), "spec.tasks[1].dependencies[1]: 'b' is listed twice"),
        (
            spec(task("a", "c"), task("b", "a"), task("c", "b")),
            "spec.tasks: dependency cycle a -> c -> b -> a",
        ),
        (spec({"id": "a"}), "spec.tasks[0].title: required field is missing"),
        (spec({"id": "a", "title": ""}), "spec.tasks[0].title: String should have at least 1 character"),
        (spec(task("a", titel="x")), "spec.tasks[0].titel: unknown field"),
        (spec(task("a", priority="urgent")), "spec.tasks[0].priority: Input should be 'high', 'medium' or"),
        (spec(task("a", estimatedTokens=-1)), "spec.tasks[0].estimatedTokens: Input should be greater than"),
        (
            spec(task("a", filesToModify=["/etc/passwd"])),
            "spec.tasks[0].filesToModify[0]: '/etc/passwd' is abs",
        ),
        (
            spec(task("a", filesToModify=["x", "a/../b"])),
            "spec.tasks[0].filesToModify[1]: 'a/../b' contains '..'",
        ),
        (
            spec(task("a", filesToModify=["a\\b"])),
            "spec.tasks[0].filesToModify[0]: 'a\\\\b' contains a backsl",
        ),
        (
            spec(task("a", filesToModify=["a\x00"])),
            "spec.tasks[0].filesToModify[0]: 'a\\x00' contains a contr",
        ),
        (spec(task("a", filesToModify=["a/"])), "spec.tasks[0].filesToModify[0]: 'a/' is not normalized"),
        (spec(task("a", filesToModify=["./a"])), "spec.tasks[0].filesToModify[0]: './a' is not normalized"),
        (spec(), "spec.tasks: List should have at least 1 item"),
        ({}, "spec.tasks: required field is missing"),
        (spec(task("a"), maxParallelTasks=0), "spec.maxParallelTasks: Input should be greater than or equal"),
        (spec(task("a"), maxParallelTasks=51), "spec.maxParallelTasks: Input should be less than or equal"),
        (spec(task("a"), team={"type": "robot"}), "spec.team.type: Input should be 'demo'"),
        (spec(task("a"), team={"type": "command"}), "spec.team.command: required when type is 'command'"),
        (spec(task("a"), policy={"maxAttempts": 11}), "spec.policy.maxAttempts: Input should be less than"),
        (
            spec(task("a"), container={"resourceLimits": {"memory": "lots"}}),
            "spec.container.resourceLimits.memory: 'lots' is not a memory size: write a Kubernetes quantity "
            "(512Mi, 2Gi) or a Podman/Docker size (512m, 2g)",
        ),
        (spec(task("a"), container={"resourceLimits": {"memory": "1Ki"}}), "spec.container.resourceLimits.m"),
        (
            spec(task("a"), container={"resourceLimits": {"memory": "1G"}}),
            "spec.container.resourceLimits.memory: '1G' is ambiguous",
        ),
        (spec(task("a"), container={"resourceLimits": {"cpus": 0}}), "spec.container.resourceLimits.cpus: "),
        (spec(task("a"), container={"resourceLimits": {"pids": 8}}), "spec.container.resourceLimits.pids: "),
        (
            spec(task("a"), container={"dependencies": ["apt:curl; rm -rf /"]}),
            "spec.container.dependencies[0]: 'apt:curl; rm -rf /' is not 'apt:NAME', 'pip:SPEC'",
        ),
        (
            spec(task("a"), container={"environment": {"OK": "1", "1BAD": "x"}}),
            "spec.container.environment: 1BAD not valid variable names",
        ),
        ("not a mapping", "spec: expected a mapping, got str"),
    ],
)
def test_invalid_spec_names_the_key_path(data: Any, expected: str) -> None:
    found = problems(data)
    assert any(line.startswith(expected) for line in found), found


def test_every_problem_is_reported_on_its_own_line() -> None:
    found = problems(spec(task("a..b"), {"id": "c"}, task("d", priority="x"), maxParallelTasks=0))
    assert len(found) == 4
    assert all(line.startswith("spec.") and "\n" not in line for line in found)


def test_a_field_error_does_not_hide_the_cross_task_problems() -> None:
    found = problems(
        spec(
            task("a", "b"),
            task("b", "a", "zz"),
            task("a"),
            task("c", priority="urgent"),
            container={"resourceLimits": {"memory": "lots"}},
        )
    )
    assert [line.split(":")[0] for line in found] == [
        "spec.container.resourceLimits.memory",
        "spec.tasks[3].priority",
        "spec.tasks[2].id",
        "spec.tasks[1].dependencies[1]",
        "spec.tasks",
    ]
    assert found[-1] == "spec.tasks: dependency cycle a -> b -> a"


def test_a_cycle_is_reported_beside_a_duplicate_and_a_self_dependency() -> None:
    found = problems(spec(task("a", "b"), task("b", "a", "b"), task("b")))
    assert found == [
        "spec.tasks[2].id: duplicate task id 'b' (also tasks[1])",
        "spec.tasks[1].dependencies[1]: task 'b' cannot depend on itself",
        "spec.tasks: dependency cycle a -> b -> a",
    ]


def test_a_second_cycle_is_found_among_acyclic_tasks() -> None:
    found = problems(spec(task("a"), task("b", "a"), task("c", "d"), task("d", "c")))
    assert found == ["spec.tasks: dependency cycle c -> d -> c"]


def test_task_spec_carries_the_definition() -> None:
    sprint = validate_sprint_spec(yaml.safe_load(EXAMPLE.read_text())["spec"])
    spec_ = task_spec_for("textstats-1", sprint, sprint.task("cli"))
    assert spec_.dump()["sprintRef"] == "textstats-1"
    assert spec_.sprint_id == "textstats-1"
    assert spec_.task_id == "cli"
    assert spec_.dependencies == ["report"]
    assert validate_task_spec(spec_.dump()) == spec_


def test_task_spec_requires_its_sprint() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_task_spec({"taskId": "a", "title": "A"})
    assert info.value.problems == [
        "spec.sprintRef: required field is missing",
        "spec.sprintId: required field is missing",
    ]


@pytest.mark.parametrize(
    ("sprint", "task_id", "expected"),
    [
        ("textstats-1", "words", "textstats-1-words"),
        ("s", "a-b", "s-a-b"),
    ],
)
def test_task_resource_name_is_plain_when_possible(sprint: str, task_id: str, expected: str) -> None:
    assert task_resource_name(sprint, task_id) == expected


def test_task_resource_name_adds_a_hash_when_it_changes_the_id() -> None:
    upper, lower = task_resource_name("s", "Words"), task_resource_name("s", "words")
    assert upper.startswith("s-words-") and len(upper) == len("s-words-") + 8
    assert upper != lower
    assert task_resource_name("s", "a.b") != task_resource_name("s", "a_b")


@given(
    sprint=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True),
    ids=st.lists(st.from_regex(ID_PATTERN, fullmatch=True), min_size=2, max_size=2, unique=True),
)
def test_task_resource_names_are_dns_labels_and_distinct(sprint: str, ids: list[str]) -> None:
    names = [task_resource_name(sprint, task_id) for task_id in ids]
    assert all(DNS_LABEL.fullmatch(name) for name in names), names
    assert names[0] != names[1]


@given(st.text(alphabet="ab./\\\x00\x1f .", max_size=12))
def test_path_pattern_of_the_crd_agrees_with_the_python_check(value: str) -> None:
    assert (re.fullmatch(PATH_PATTERN, value) is not None) == (path_problem(value) is None)


@given(st.text(alphabet="aZ9._-/ ", max_size=70))
def test_id_check_accepts_exactly_the_crd_pattern_without_dotdot_or_lock(value: str) -> None:
    crd_accepts = bool(re.fullmatch(ID_PATTERN, value)) and ".." not in value and not value.endswith(".lock")
    try:
        check_safe_id(value)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == crd_accepts


def test_key_path_quotes_keys_that_are_not_identifiers() -> None:
    assert key_path("spec", ("container", "environment", "a-b", 0)) == "spec.container.environment['a-b'][0]"


def test_status_dump_is_a_merge_patch_of_the_set_fields() -> None:
    status = TaskStatus(phase="Running", container_health="running", attempt=1)
    assert status.dump() == {"phase": "Running", "containerHealth": "running", "attempt": 1}
    assert SprintStatus(progress="3/6").dump() == {"progress": "3/6"}


def test_status_read_ignores_unknown_fields_and_keeps_kopf() -> None:
    stored = {"phase": "Review", "future": 1, "kopf": {"progress": {"h": {"retries": 1}}}}
    status = parse_task_status(copy.deepcopy(stored))
    assert status.phase == "Review"
    assert status.kopf == stored["kopf"]
    assert parse_sprint_status(None) == SprintStatus()


def test_status_rejects_an_unknown_phase() -> None:
    with pytest.raises(ValueError, match="phase"):
        TaskStatus.model_validate({"phase": "Dancing"})


def test_task_spec_model_has_every_definition_field() -> None:
    from sprint_orchestrator.model import TaskDefinition

    assert set(TaskDefinition.model_fields) - {"id"} <= set(TaskSpec.model_fields)
