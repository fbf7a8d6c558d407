"""The Sprint and Task resource specs: pydantic models validated once, at the edge.

Python attributes are snake_case; every model dumps the Kubernetes camelCase shape with
`model_dump(by_alias=True, exclude_none=True)` and accepts either spelling on input.
Statuses live in `status.py`; the CRDs are generated from both by `crdgen.py`.

Errors name the key path: `validate_sprint_spec` raises `InvalidInput` whose `problems` read like
"spec.tasks[1].id: 'a..b' is not safe as a git ref component".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from . import placement, plan, quantities
from .errors import InvalidInput
from .validators import (
    DEPENDENCY_PATTERN,
    ENV_NAME_RULE,
    ID_PATTERN,
    ID_RULES,
    PATH_PATTERN,
    check_dependency,
    check_path,
    check_safe_id,
    describe_errors,
)

ID_MAX = 63
TEXT_MAX = 4096
LONG_TEXT_MAX = 65536
LIST_MAX = 100
# A planner's fan-out (a codemod across a monorepo) is hundreds of tasks. The CRD mirrors the count as
# maxItems; the cross-task checks (unknown dependencies, cycles) are the operator's (graph_problems, the
# Ready=False/InvalidSpec condition): as a CEL rule, "every dependency is a task" costs tasks x
# dependencies x tasks, 20 million comparisons at 1,000 tasks, far over the apiserver's cost budget.
TASKS_MAX = 1000
PATHS_MAX = 200
DEPENDENCIES_MAX = 20
# The Sprint, its status and its managedFields are one etcd object (etcd refuses requests over 1.5 MiB);
# the spec keeps to this many bytes of compact JSON so the whole object fits with room for the status.
SPEC_BYTES_MAX = 1_000_000


# CEL rules of the CRD mirroring the per-task cross-field checks (the cross-task ones: see TASKS_MAX).
COMMAND_RULE: JsonDict = {
    "rule": "!has(self.type) || self.type != 'command' || (has(self.command) && size(self.command) > 0)",
    "message": "command is required when type is 'command'",
}
SELF_DEPENDENCY_RULE: JsonDict = {
    "rule": "!has(self.dependencies) || !(self.id in self.dependencies)",
    "message": "a task cannot depend on itself",
}


class Priority(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class TeamType(StrEnum):
    DEMO = "demo"
    CLAUDE_CODE = "claude-code"
    CODEX = "codex"
    GEMINI = "gemini"
    COMMAND = "command"


class OutOfScopePolicy(StrEnum):
    WARN = "warn"
    REVIEW = "review"


class IntegrationFailurePolicy(StrEnum):
    BISECT = "bisect"
    ROLLBACK = "rollback"


class CamelModel(BaseModel):
    """Base of every resource model: camelCase aliases, enum values stored as plain strings."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=True,
        extra="forbid",
        validate_default=False,
    )

    def dump(self) -> dict[str, Any]:
        """The Kubernetes (camelCase, JSON-compatible) shape, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


SafeId = Annotated[
    str,
    AfterValidator(check_safe_id),
    Field(
        json_schema_extra={"pattern": ID_PATTERN, "maxLength": ID_MAX, "x-kubernetes-validations": ID_RULES}
    ),
]
RelPath = Annotated[
    str,
    AfterValidator(check_path),
    Field(json_schema_extra={"pattern": PATH_PATTERN, "maxLength": 1024}),
]
Dependency = Annotated[
    str,
    AfterValidator(check_dependency),
    Field(json_schema_extra={"pattern": DEPENDENCY_PATTERN, "maxLength": 256}),
]


def _check_memory(value: Any) -> Any:
    quantities.memory_bytes(value)
    return value


def _check_cpus(value: Any) -> Any:
    quantities.nano_cpus(value)
    return value


def _check_disk(value: Any) -> Any:
    quantities.disk_bytes(value)
    return value


MemorySize = Annotated[int | str, BeforeValidator(_check_memory), WithJsonSchema(quantities.MEMORY_SCHEMA)]
DiskSize = Annotated[int | str, BeforeValidator(_check_disk), WithJsonSchema(quantities.MEMORY_SCHEMA)]
CpuCount = Annotated[int | float | str, BeforeValidator(_check_cpus), WithJsonSchema(quantities.CPUS_SCHEMA)]
Text = Annotated[str, Field(max_length=TEXT_MAX)]
Glob = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
TextList = Annotated[list[Text], Field(max_length=LIST_MAX)]


class RepositoryRef(CamelModel):
    url: str = Field(max_length=TEXT_MAX, min_length=1, description="Local path or remote URL.")
    main_branch: str = Field(default="main", max_length=255, min_length=1)


class ResourceLimits(CamelModel):
    """Limits of one task container; unset (or an empty object) means the defaults."""

    # `memory` and `cpus` keep the user's notation (quantities.py); `memory_bytes` and `nano_cpus` are
    # their normalized values, computed once when the model is validated.

    cpus: CpuCount | None = None
    memory: MemorySize | None = None
    pids: int | None = Field(default=None, ge=16, le=1_000_000)
    timeout_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    disk: DiskSize | None = None  # what the workspace and /artifacts of each container may hold
    _memory_bytes: int | None = PrivateAttr(default=None)
    _disk_bytes: int | None = PrivateAttr(default=None)
    _nano_cpus: int | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _normalize(self) -> ResourceLimits:
        self._memory_bytes = None if self.memory is None else quantities.memory_bytes(self.memory)
        self._nano_cpus = None if self.cpus is None else quantities.nano_cpus(self.cpus)
        self._disk_bytes = None if self.disk is None else quantities.disk_bytes(self.disk)
        return self

    @property
    def disk_bytes(self) -> int | None:
        return self._disk_bytes

    @property
    def memory_bytes(self) -> int | None:
        return self._memory_bytes

    @property
    def nano_cpus(self) -> int | None:
        return self._nano_cpus


class ContainerConfig(CamelModel):
    base_image: str | None = Field(default=None, max_length=512, min_length=1)
    dependencies: list[Dependency] = Field(
        default_factory=list, max_length=LIST_MAX, description='"apt:NAME", "pip:SPEC"; a bare name is apt.'
    )
    environment: dict[str, Text] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": LIST_MAX, "x-kubernetes-validations": [ENV_NAME_RULE]},
    )
    resource_limits: ResourceLimits | None = None
    # Where the Pods run (placement.py); the podman runtime ignores these and says so.
    runtime_class_name: placement.ClassName | None = Field(
        default=None, description="The RuntimeClass of every Pod (gVisor, Kata: where the cluster has one)."
    )
    node_selector: placement.NodeSelector | None = None
    tolerations: placement.Tolerations | None = None
    priority_class_name: placement.PriorityClassName | None = None

    @model_validator(mode="after")
    def _check_environment(self) -> ContainerConfig:
        bad = [name for name in self.environment if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)]
        if bad:
            raise PydanticCustomError(
                "consistency", "environment: {names} not valid variable names", {"names": ", ".join(bad)}
            )
        return self


class TeamConfig(CamelModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [COMMAND_RULE]})

    type: TeamType | None = Field(
        default=None,
        description="The agent CLI; unset means the operator's default team (orchestrator.default_team, "
        "claude-code unless configured). demo is a deterministic stand-in for tests and the demo.",
    )
    command: list[Text] | None = Field(default=None, max_length=LIST_MAX)
    model: str | None = Field(default=None, max_length=255)
    recipes: str | None = Field(default=None, max_length=TEXT_MAX, description="Demo team: recipes dir.")
    sleep_seconds: int | None = Field(default=None, ge=0, le=3600)

    @model_validator(mode="after")
    def _check_command(self) -> TeamConfig:
        if self.type == TeamType.COMMAND and not self.command:
            raise PydanticCustomError("consistency", "command: required when type is 'command'")
        return self


class SprintPolicy(CamelModel):
    out_of_scope_changes: OutOfScopePolicy = Field(
        default=OutOfScopePolicy.REVIEW,
        description="review (default): a task that changed files outside filesToModify waits for a human; "
        "warn: it merges with a warning. Protected paths always need a human.",
    )
    on_integration_failure: IntegrationFailurePolicy = IntegrationFailurePolicy.BISECT
    max_attempts: int = Field(default=3, ge=1, le=10)
    token_budget_factor: float = Field(default=2.0, ge=1)


class AutoFix(CamelModel):
    """A failing gate sends the task back to its team with the failing output (as a review), up to
    `maxRounds` times, before it waits for a human."""

    max_rounds: int = Field(ge=1, le=10)


class TaskFields(CamelModel):
    """The fields a Task carries from its definition in the Sprint."""

    title: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=LONG_TEXT_MAX)
    requirements: TextList = Field(default_factory=list)
    success_criteria: TextList = Field(default_factory=list)
    priority: Priority = Priority.MEDIUM
    estimated_tokens: int | None = Field(default=None, ge=0)
    files_to_modify: list[RelPath] = Field(default_factory=list, max_length=PATHS_MAX)
    dependencies: list[SafeId] = Field(
        default_factory=list, max_length=DEPENDENCIES_MAX, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    test_requirements: TextList = Field(default_factory=list, description="Shell commands run as gates.")
    # No CRD default (None means false): a defaulted field inside a list item makes every client-side
    # `kubectl apply` of an unchanged manifest rewrite the whole list.
    allow_no_changes: bool | None = Field(
        default=None,
        description="A task whose team changed nothing goes to Review (NoChanges) unless this is true.",
    )


class _TaskId(CamelModel):
    id: SafeId


class TaskDefinition(TaskFields, _TaskId):  # this base order puts `id` first in dumps
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [SELF_DEPENDENCY_RULE]})


class _TaskRef(CamelModel):
    sprint_ref: str = Field(min_length=1, max_length=253, description="metadata.name of the Sprint.")
    sprint_id: SafeId
    task_id: SafeId


class TaskSpec(TaskFields, _TaskRef):
    """Spec of a Task resource: created by the operator, one per Sprint spec.tasks entry."""


class SprintSpec(CamelModel):
    sprint_id: SafeId | None = Field(default=None, description="Defaults to metadata.name.")
    display_name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=LONG_TEXT_MAX)
    suspend: bool = False
    repository: RepositoryRef | None = None
    container: ContainerConfig | None = None
    team: TeamConfig = Field(default_factory=TeamConfig)
    tasks: list[TaskDefinition] = Field(
        min_length=1,
        max_length=TASKS_MAX,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    success_criteria: TextList = Field(default_factory=list)
    integration_tests: TextList = Field(default_factory=list)
    max_parallel_tasks: int = Field(default=5, ge=1, le=50)
    token_budget: int | None = Field(default=None, ge=0)
    after: str | None = Field(default=None, max_length=253, min_length=1)
    policy: SprintPolicy = Field(default_factory=SprintPolicy)
    auto_fix: AutoFix | None = Field(
        default=None, description="Unset (the default): a failed gate waits for a human in Review."
    )
    protected_paths: list[Glob] = Field(
        default_factory=list,
        max_length=LIST_MAX,
        description="More globs a task may change only with a human's approval (besides test, build, CI "
        "and dependency files). No '/': a file name anywhere; with '/': the whole path, '*' crossing '/'.",
    )

    @model_validator(mode="after")
    def _check_graph(self) -> SprintSpec:
        problems = graph_problems(self.tasks)
        if problems:
            raise PydanticCustomError("consistency", "\n".join(problems))
        size = spec_bytes(self)
        if size > SPEC_BYTES_MAX:
            raise PydanticCustomError(
                "invalid",
                "{size} bytes as JSON; a Sprint spec holds at most {limit} bytes (etcd keeps a Sprint and "
                "its status in one object of at most 1.5 MiB): shorten the task descriptions or split "
                "the sprint",
                {"size": size, "limit": SPEC_BYTES_MAX},
            )
        return self

    def with_default_team(self, team_type: str) -> SprintSpec:
        """This spec with team.type set to the operator's default when the author left it unset."""
        if self.team.type is not None:
            return self
        team = self.team.model_copy(update={"type": team_type})
        return self.model_copy(update={"team": team})

    def resolved_id(self, sprint_name: str) -> str:
        """The sprint id: spec.sprintId, or the Sprint's metadata.name."""
        return self.sprint_id or sprint_name

    def task(self, task_id: str) -> TaskDefinition:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise InvalidInput(f"spec.tasks: no task with id {task_id!r}")


def spec_bytes(spec: CamelModel) -> int:
    """The size of a spec as the apiserver stores it: compact JSON of its Kubernetes shape."""
    return len(json.dumps(spec.dump(), separators=(",", ":"), ensure_ascii=False).encode())


def graph_problems(tasks: Sequence[plan.Node]) -> list[str]:
    """Cross-task problems (duplicates, unknown or self dependencies, cycles), each with its path.

    Every kind is reported at once: a cycle is looked for among the first task of each id, without
    self-dependencies (they are reported on their own).
    """
    return _graph_problems(list(enumerate(tasks)))


def raw_graph_problems(tasks: Any) -> list[str]:
    """graph_problems of an unvalidated task list, on whatever parsed: used when a field error keeps
    pydantic from reaching the cross-task check, so one round reports both kinds."""
    if not isinstance(tasks, list):
        return []
    nodes: list[tuple[int, plan.Node]] = []
    for i, task in enumerate(tasks):
        if isinstance(task, dict) and isinstance(task.get("id"), str):
            deps = task.get("dependencies")
            names = tuple(d for d in deps if isinstance(d, str)) if isinstance(deps, list) else ()
            nodes.append((i, plan.TaskView(id=task["id"], dependencies=names)))
    return _graph_problems(nodes)


def _graph_problems(tasks: list[tuple[int, plan.Node]]) -> list[str]:
    problems: list[str] = []
    first: dict[str, int] = {}
    for i, task in tasks:
        if task.id in first:
            problems.append(f"tasks[{i}].id: duplicate task id {task.id!r} (also tasks[{first[task.id]}])")
        first.setdefault(task.id, i)
    for i, task in tasks:
        seen: set[str] = set()
        for j, dep in enumerate(task.dependencies):
            where = f"tasks[{i}].dependencies[{j}]"
            if dep == task.id:
                problems.append(f"{where}: task {task.id!r} cannot depend on itself")
            elif dep not in first:
                problems.append(f"{where}: {dep!r} is not the id of a task in this sprint")
            elif dep in seen:
                problems.append(f"{where}: {dep!r} is listed twice")
            seen.add(dep)
    unique = [
        plan.TaskView(id=task.id, dependencies=tuple(d for d in task.dependencies if d != task.id))
        for i, task in tasks
        if first[task.id] == i
    ]
    cycle = plan.find_cycle(unique)
    if cycle:
        problems.append("tasks: dependency cycle " + " -> ".join(cycle))
    return problems


def spec_problems(exc: ValidationError, spec: dict[str, Any], path: str) -> list[str]:
    """Every problem of a spec that failed validation: the field errors, and the cross-task problems
    of the raw task list when a field error kept the model's own cross-task check from running."""
    lines = describe_errors(exc, path)
    prefix = f"{path}." if path else ""
    lines += [prefix + line for line in raw_graph_problems(spec.get("tasks")) if prefix + line not in lines]
    return lines


def validate_sprint_spec(spec: Any, path: str = "spec") -> SprintSpec:
    """Validate a Sprint spec (camelCase or snake_case keys); raise InvalidInput naming every problem."""
    if not isinstance(spec, dict):
        raise InvalidInput(f"{path}: expected a mapping, got {type(spec).__name__}")
    try:
        return SprintSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidInput(f"{path}: invalid Sprint spec", spec_problems(exc, spec, path)) from None


def validate_task_spec(spec: Any, path: str = "spec") -> TaskSpec:
    if not isinstance(spec, dict):
        raise InvalidInput(f"{path}: expected a mapping, got {type(spec).__name__}")
    try:
        return TaskSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidInput(f"{path}: invalid Task spec", describe_errors(exc, path)) from None


def task_spec_for(sprint_name: str, spec: SprintSpec, task: TaskDefinition) -> TaskSpec:
    """The spec of the Task resource for one task of a Sprint."""
    fields = task.model_dump(exclude={"id"})
    return TaskSpec(
        sprint_ref=sprint_name, sprint_id=spec.resolved_id(sprint_name), task_id=task.id, **fields
    )


_NAME_MAX = 63


def task_resource_name(sprint_name: str, task_id: str) -> str:
    """metadata.name of a Task: "{sprint}-{task id}", DNS-safe and at most 63 characters.

    A task id that had to be changed (uppercase, '.', '_') or a name that is too long gets a suffix of
    8 hex digits of sha256 of the unchanged "{sprint}-{task id}", so distinct ids never share a name:
    ("textstats-1", "words") -> "textstats-1-words"; ("s", "Words") -> "s-words-<8 hex>".
    """
    original = f"{sprint_name}-{task_id}"
    clean = re.sub(r"[^a-z0-9-]", "-", original.lower())
    if clean == original and len(clean) <= _NAME_MAX:
        return clean
    digest = hashlib.sha256(original.encode()).hexdigest()[:8]
    return f"{clean[: _NAME_MAX - 9].rstrip('-')}-{digest}"
