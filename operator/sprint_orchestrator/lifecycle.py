"""PURE: the Task and Sprint lifecycles, each written as one table (`TRANSITIONS[phase][event] -> phase`).

Task (the board column of each phase in brackets):

    Pending [ready] --start--> Ready [ready] --admit--> Running [in-progress]
    Running --container_exited--> Gating [in-progress] --merged--> Completed [completed]
        (its gates passed, merged in its turn: the merge's outcome is the write that ends the gating)
    Running --merged--> Completed (no gate to run and nothing to review: merged when the container ends)
    Running --no_changes--> Review (the team changed nothing and the task does not allowNoChanges)
    Review --approve--> Merging [in-progress] --merged--> Completed (the merge queue, merging.py)
    Gating --gates_failed--> Review [review]      Merging --conflict--> Review (a human merges or retries)
    Review/Failed --retry--> Ready
    Running/Gating/Merging --retry--> Ready (timeout, out of memory, infrastructure: try again)
    any waiting phase --block--> Blocked [ready] --unblock--> Ready (a dependency failed / was retried)
    any unfinished phase --fail/cancel--> Failed [failed]

Sprint:

    Pending --initialize--> Initializing --initialized--> Running --all_tasks_settled--> Integrating
    Integrating --integration_passed--> Completed | --integration_passed_partial--> Partial
                | --rolled_back--> RolledBack | --failed--> Failed
    Initializing --init_failed--> Failed; any unfinished phase --cancel--> Failed

A move the table does not list raises `IllegalTransition` naming the phase and the event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import IllegalTransition

_ENDS = {"fail": "Failed", "cancel": "Failed"}
_WAITING = {"admit": "Running", "block": "Blocked", **_ENDS}
_BUSY = {"retry": "Ready", **_ENDS}

TASK_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    "Pending": {"start": "Ready", **_WAITING},
    "Ready": {**_WAITING},
    "Running": {
        "start": "Running",
        "container_exited": "Gating",
        "merged": "Completed",
        "no_changes": "Review",
        **_BUSY,
    },
    "Gating": {"merged": "Completed", "gates_failed": "Review", **_BUSY},
    "Merging": {"merged": "Completed", "conflict": "Review", **_BUSY},
    "Review": {"approve": "Merging", "retry": "Ready", **_ENDS},
    "Completed": {"eject": "Failed"},  # merged, then found to break the integration tests
    "Failed": {"retry": "Ready"},
    "Blocked": {"unblock": "Ready", **_ENDS},
}
TASK_EVENTS = (
    "admit", "start", "container_exited", "gates_failed", "merged", "conflict",
    "fail", "retry", "approve", "block", "unblock", "cancel", "eject", "no_changes",
)  # fmt: skip

SPRINT_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    "Pending": {"initialize": "Initializing", "cancel": "Failed"},
    "Initializing": {"initialized": "Running", "init_failed": "Failed", "cancel": "Failed"},
    "Running": {"all_tasks_settled": "Integrating", "cancel": "Failed"},
    "Integrating": {
        "integration_passed": "Completed",
        "integration_passed_partial": "Partial",
        "rolled_back": "RolledBack",
        "failed": "Failed",
        "cancel": "Failed",
    },
    "Completed": {},
    "Partial": {},
    "Failed": {},
    "RolledBack": {},
}
SPRINT_EVENTS = (
    "initialize", "initialized", "init_failed", "all_tasks_settled", "integration_passed",
    "integration_passed_partial", "rolled_back", "failed", "cancel",
)  # fmt: skip

COLUMN_OF_PHASE: Mapping[str, str] = {
    "Pending": "ready",
    "Ready": "ready",
    "Blocked": "ready",
    "Running": "in-progress",
    "Gating": "in-progress",
    "Merging": "in-progress",
    "Review": "review",
    "Completed": "completed",
    "Failed": "failed",
}
COLUMNS = ("ready", "in-progress", "review", "completed", "failed")
# A sprint integrates once every task is in one of these phases. Review is not one: a task there waits
# for a human (approve or retry), and the sprint waits with it (Argo CD shows it Suspended).
SETTLED = frozenset({"Completed", "Failed", "Blocked"})
TERMINAL_SPRINT_PHASES = frozenset(p for p, events in SPRINT_TRANSITIONS.items() if not events)
DISK_FULL = "DiskFull"  # status.reason of a task waiting in its phase for space on the operator's disk


def _next(table: Mapping[str, Mapping[str, str]], phase: str, event: str) -> str:
    try:
        return table[phase][event]
    except KeyError:
        raise IllegalTransition(phase, event) from None


def next_task_phase(phase: str, event: str) -> str:
    """The Task phase after `event`; IllegalTransition when the table has no such move."""
    return _next(TASK_TRANSITIONS, phase, event)


def event_for_move(table: Mapping[str, Mapping[str, str]], phase: str, new_phase: str) -> str:
    """The event that moves `phase` to `new_phase`; IllegalTransition when the table has none.

    Handlers write the phase they reached; this checks every such write against the table.
    """
    for event, target in table.get(phase, {}).items():
        if target == new_phase:
            return event
    raise IllegalTransition(phase, f"move to {new_phase}")


def next_sprint_phase(phase: str, event: str) -> str:
    return _next(SPRINT_TRANSITIONS, phase, event)


def column_counts(task_phases: Iterable[str]) -> dict[str, int]:
    """Tasks per board column, every column present: {"ready": 2, "in-progress": 1, ...}."""
    counts = Counter(COLUMN_OF_PHASE[phase] for phase in task_phases)
    return {column: counts.get(column, 0) for column in COLUMNS}


def progress(task_phases: Iterable[str]) -> str:
    """The "done/total" printer column: "3/6"."""
    phases = list(task_phases)
    return f"{sum(1 for p in phases if p == 'Completed')}/{len(phases)}"


def all_settled(task_phases: Iterable[str]) -> bool:
    """True when the sprint may integrate: at least one task, and every task settled."""
    phases = list(task_phases)
    return bool(phases) and all(phase in SETTLED for phase in phases)


def waits_for_human(task_phases: Iterable[str]) -> bool:
    """True when nothing can move until a human acts: some task in Review, every other one settled."""
    phases = list(task_phases)
    return "Review" in phases and all(phase in SETTLED or phase == "Review" for phase in phases)


def sprint_outcome(task_phases: Iterable[str], changed_any: bool = True) -> str:
    """The sprint's phase if integration passes: Completed (every task), Partial (some), Failed (none).

    A sprint in which no completed task changed anything (`changed_any` False) is Failed: "nothing
    happened" is never reported as success.
    """
    phases = list(task_phases)
    done = sum(1 for phase in phases if phase == "Completed")
    if not changed_any:
        return "Failed"
    if phases and done == len(phases):
        return "Completed"
    return "Partial" if done else "Failed"


def integration_passed_event(task_phases: Iterable[str], changed_any: bool = True) -> str:
    """The Sprint event for a passing integration run: integration_passed(_partial), or failed."""
    return {"Completed": "integration_passed", "Partial": "integration_passed_partial"}.get(
        sprint_outcome(task_phases, changed_any), "failed"
    )


def without_disk_wait(current: Mapping[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A Task's status patch that moves it on from a phase it waited in for space (reason DiskFull)
    clears that wait's reason, message and advice, unless the patch sets its own."""
    if current.get("reason") != DISK_FULL:
        return patch
    return {"reason": "", "error": "", "recoveryAction": "", **patch}
