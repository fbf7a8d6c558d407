"""The Sprint and Task statuses: every field the operator writes, declared so the CRD keeps it.

Every field is optional (None = not set), so `SomeStatus(phase=...).dump()` is exactly a merge patch
of the fields that were set. Reading is lenient (unknown keys are ignored, e.g. from a newer operator).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, WithJsonSchema

from .model import CamelModel

DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Counts = dict[str, int]
Ids = list[str]
# Kubernetes conventions: conditions are a map keyed by type (one condition per type).
Conditions = Annotated[
    list["Condition"],
    Field(json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
]
PreserveUnknown = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
]


class SprintPhase(StrEnum):
    PENDING = "Pending"
    INITIALIZING = "Initializing"
    RUNNING = "Running"
    INTEGRATING = "Integrating"
    COMPLETED = "Completed"
    PARTIAL = "Partial"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"


class TaskPhase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    RUNNING = "Running"
    GATING = "Gating"
    MERGING = "Merging"
    REVIEW = "Review"
    COMPLETED = "Completed"
    FAILED = "Failed"
    BLOCKED = "Blocked"


class Column(StrEnum):
    READY = "ready"
    IN_PROGRESS = "in-progress"
    REVIEW = "review"
    COMPLETED = "completed"
    FAILED = "failed"


class ContainerHealth(StrEnum):
    NONE = "none"
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    OOM_KILLED = "oom-killed"
    TIMED_OUT = "timed-out"
    REMOVED = "removed"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class StatusModel(CamelModel):
    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """A Kubernetes condition (types used: Ready, Running, Integrated, Pushed, Completed)."""

    type: str = Field(max_length=316)
    status: ConditionStatus
    reason: str | None = Field(default=None, max_length=1024)
    message: str | None = Field(default=None, max_length=32768)
    last_transition_time: DateTime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class Columns(StatusModel):
    ready: int = 0
    in_progress: int = 0
    review: int = 0
    completed: int = 0
    failed: int = 0


class SprintTokens(StatusModel):
    budget: int | None = None
    used: int | None = None
    estimated: int | None = None
    by_category: Counts | None = None
    by_model: Counts | None = None
    cost_usd: float | None = None


class Report(StatusModel):
    path: str | None = None
    summary: str | None = None
    slot_utilization: float | None = None
    markdown: str | None = Field(default=None, max_length=262144, description="The full Markdown report.")


class GateResult(StatusModel):
    name: str
    command: str | None = None
    exit_code: int | None = None
    duration_seconds: float | None = None
    passed: bool
    log_tail: str | None = None


class PushState(StatusModel):
    """Pushing main to the remote: attempts so far, the remote's last refusal, when to try again."""

    attempts: int | None = None
    last_error: str | None = Field(default=None, max_length=4096)
    next_attempt_at: DateTime | None = None


class SprintStatus(StatusModel):
    observed_generation: int | None = None
    phase: SprintPhase | None = None
    conditions: Conditions | None = None
    columns: Columns | None = None
    total: int | None = None
    progress: str | None = Field(default=None, description='"done/total", e.g. "3/6".')
    tokens: SprintTokens | None = None
    token_summary: str | None = Field(default=None, description='"used/budget".')
    branch: str | None = None
    worktree: str | None = None
    image: str | None = None
    base_commit: str | None = None
    main_commit: str | None = None
    integrated_commit: str | None = None
    integration_infra_retries: int | None = Field(
        default=None,
        description="Times the infrastructure ended the integration tests (an evicted Pod, a lost node): "
        "run again with backoff on the budget of containers.infrastructure_retries, then the sprint fails.",
    )
    started_at: DateTime | None = None
    completed_at: DateTime | None = None
    merge_queue: Ids | None = None
    merged: Ids | None = Field(
        default=None,
        description="The merged tasks in the order the sprint branch merged them (its first-parent history), "
        "written with the move to Integrating; bisection rebuilds the sprint in this order.",
    )
    report: Report | None = None
    integration: list[GateResult] | None = Field(default=None, max_length=100)
    push: PushState | None = None
    message: str | None = None
    kopf: PreserveUnknown | None = None


class TaskTokens(StatusModel):
    estimated: int | None = None
    actual: int | None = None
    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_creation: int | None = None
    by_category: Counts | None = None
    by_model: Counts | None = None
    cost_usd: float | None = None
    partial: bool | None = None
    efficiency: float | None = None
    source: str | None = Field(default=None, description="proxy, agent or none.")
    agent_reported: int | None = None


class Results(StatusModel):
    summary: str | None = Field(default=None, description="The first ~2 KiB of RESULTS.md.")
    present: bool | None = None
    artifacts: Ids | None = None
    problems: Ids | None = Field(default=None, description="What could not be read, and why.")


class TaskLimits(StatusModel):
    """The limits of the current attempt, normalized (as raised by the retry policy after a timeout or
    an out-of-memory kill): `memory` and `cpus` are the canonical spellings of `memoryBytes`, `nanoCpus`."""

    cpus: float | None = None
    nano_cpus: int | None = None
    memory: str | None = Field(default=None, max_length=32, description="e.g. 512Mi.")
    memory_bytes: int | None = None
    pids: int | None = None
    timeout_seconds: float | None = None


class AuditEntry(StatusModel):
    """A line of the task's audit trail: something a reviewer must know about what the team did."""

    time: DateTime
    event: str = Field(description="e.g. ProtectedPathsChanged, OutOfScopeChanges")
    detail: str = Field(max_length=2000)


class ReviewComment(StatusModel):
    body: str = Field(max_length=4000)
    path: str | None = Field(default=None, max_length=1024)
    line: int | None = Field(default=None, ge=1)


class ReviewRecord(StatusModel):
    """A reviewer's request for changes: who, when, on which attempt and commit, and what they said
    (quoted to the next attempt as data in TASK.md)."""

    attempt: int
    by: str = Field(max_length=100)
    time: DateTime
    commit: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=8000)
    comments: list[ReviewComment] | None = Field(default=None, max_length=100)
    tokens: int | None = Field(default=None, description="Tokens the reviewed attempt used.")


class AgentSession(StatusModel):
    """The agent CLI's session the last attempt left, kept by the operator so that a review resumes it."""

    cli: str = Field(max_length=32)
    id: str = Field(max_length=64)
    attempt: int
    resumed_from: int | None = Field(
        default=None, description="The earlier attempt whose session this attempt resumed."
    )
    reported_tokens: int | None = Field(
        default=None, description="The CLI's own token total for the whole session at this attempt's end."
    )
    reported_cost_usd: float | None = Field(
        default=None, description="The CLI's own cost for the whole session at this attempt's end."
    )


class TaskStatus(StatusModel):
    # What a new Task's status says before the operator writes it: the API server's defaults (the CRD's,
    # crdgen), so a waiting task is Pending on the board and in `kubectl get stask` from its creation
    # without a write of its own; its admission writes the rest (attempt 1, maxAttempts).
    CREATED: ClassVar[dict[str, Any]] = {
        "phase": "Pending",
        "column": "ready",
        "attempt": 0,
        "containerHealth": "none",
    }

    observed_generation: int | None = None
    conditions: Conditions | None = None
    column: Column | None = None
    phase: TaskPhase | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    infra_retries: int | None = Field(
        default=None,
        description="Attempts the infrastructure ended (evicted, node lost, image pull): retried on a budget "
        "of their own, not counted against maxAttempts.",
    )
    branch: str | None = None
    workspace: str | None = None
    container_id: str | None = None
    container_name: str | None = None
    container_health: ContainerHealth | None = None
    exit_code: int | None = None
    container_started_at: DateTime | None = Field(
        default=None, description="When the last attempt's container (or Pod) started its command."
    )
    container_finished_at: DateTime | None = Field(
        default=None, description="When that command ended, as Podman or the kubelet reports it."
    )
    start_time: DateTime | None = None
    completion_time: DateTime | None = None
    duration_seconds: float | None = None
    tokens: TaskTokens | None = None
    tokens_by_attempt: Counts | None = Field(
        default=None,
        description="Tokens each earlier attempt spent, by attempt number: they count against the budgets.",
    )
    results: Results | None = None
    gates: list[GateResult] | None = None
    changed_files: Ids | None = None
    out_of_scope: Ids | None = None
    protected_paths: Ids | None = Field(
        default=None, description="Protected paths the task changed: merging them needs a human."
    )
    protected_diff: str | None = Field(
        default=None, max_length=20_000, description="The diff of those paths (task data, shown escaped)."
    )
    audit: list[AuditEntry] | None = Field(default=None, max_length=50)
    refused_files: Ids | None = Field(
        default=None, description="Files left out of the commit: symlinks out of the repository, huge files."
    )
    commit: str | None = None
    merge_commit: str | None = None
    conflicts: Ids | None = None
    error: str | None = None
    reason: str | None = None
    recovery_action: str | None = None
    next_retry_at: DateTime | None = None
    blocked_by: Ids | None = None
    base_commit: str | None = None
    artifacts_path: str | None = None
    log_path: str | None = None
    gated_at: DateTime | None = None
    no_changes: bool | None = None
    limits: TaskLimits | None = None
    handled_retry: str | None = Field(default=None, max_length=64, description="Last retry nonce applied.")
    handled_approve: str | None = Field(
        default=None, max_length=64, description="Last approve nonce applied."
    )
    handled_request_changes: str | None = Field(
        default=None, max_length=64, description="Last request-changes nonce applied."
    )
    reviews: list[ReviewRecord] | None = Field(
        default=None, max_length=20, description="Changes requested by reviewers, oldest first."
    )
    continue_from: str | None = Field(
        default=None, max_length=64, description="The commit the next attempt's workspace starts from."
    )
    auto_fix_rounds: int | None = Field(
        default=None, description="Gate failures sent back to the team automatically (spec.autoFix)."
    )
    approved_commit: str | None = Field(
        default=None, max_length=64, description="The exact commit a reviewer approved for merging."
    )
    session: AgentSession | None = Field(
        default=None, description="The agent CLI's session kept for the next attempt to resume."
    )
    kopf: PreserveUnknown | None = None


def parse_sprint_status(status: Any) -> SprintStatus:
    """Read a Sprint's .status as stored (an empty or missing status is an empty model)."""
    return SprintStatus.model_validate(status or {})


def parse_task_status(status: Any) -> TaskStatus:
    return TaskStatus.model_validate(status or {})
