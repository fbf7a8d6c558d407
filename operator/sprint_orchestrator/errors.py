"""The project's error hierarchy.

Every message is a sentence a user can act on. Adapters translate library errors into these
(`raise ... from exc`); each front end (CLI, web API, kopf handlers) maps them to exit codes,
HTTP statuses or conditions in one place.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class for every error the orchestrator raises on purpose."""


class InvalidInput(OrchestratorError):
    """Bad user input: a spec, an id, a path, a file. Carries one problem per entry in `problems`."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class MissingApiKey(InvalidInput):
    """A team needs a model API key the operator does not have."""


class GitError(OrchestratorError):
    """A git operation could not be done (the message says which and why)."""


class MergeRefused(GitError):
    """A merge was refused because a ref moved since it was checked."""


class DiskFull(OrchestratorError):
    """The operator's own disk (its clones, worktrees, workspaces) has no space left for a write: nothing
    the work did wrong; the step is retried, its work kept, once space is freed (diskspace.py)."""


class RuntimeUnavailable(OrchestratorError):
    """The container runtime is missing or misconfigured (the message says how to fix it)."""


class ImageBuildFailed(OrchestratorError):
    """A sprint image could not be built; `log_tail` holds the end of the build log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class TaskStartFailed(OrchestratorError):
    """A task container could not be created or started (bad image, name taken by a foreign container)."""


class PodRejected(TaskStartFailed):
    """The API server refused a task's Pod for a reason a retry would meet again (a RuntimeClass or
    PriorityClass that does not exist, an invalid field, Pod Security): the task fails at once."""


class InfrastructureFailure(OrchestratorError):
    """The node or the cluster ended a run, not its work (an evicted gate Pod): retried as such."""


class UsageParseError(InvalidInput):
    """A token-usage transcript could not be parsed."""


class IllegalTransition(OrchestratorError):
    """A phase/column transition that the lifecycle table does not allow: always a bug."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"illegal transition: event {event!r} is not allowed in state {state!r}")
        self.state = state
        self.event = event
