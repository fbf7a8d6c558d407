"""PURE planning: the task dependency graph and which tasks may start now.

No I/O, no clock, no Kubernetes: data in, data out. The lifecycle tables live in `lifecycle.py` and
are re-exported here, so callers need one import: `plan.admit`, `plan.next_task_phase`, ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .lifecycle import (
    COLUMN_OF_PHASE,
    SETTLED,
    SPRINT_TRANSITIONS,
    TASK_TRANSITIONS,
    all_settled,
    column_counts,
    integration_passed_event,
    next_sprint_phase,
    next_task_phase,
    progress,
    sprint_outcome,
)

__all__ = [
    "COLUMN_OF_PHASE",
    "SETTLED",
    "SPRINT_TRANSITIONS",
    "TASK_TRANSITIONS",
    "TaskView",
    "admit",
    "all_settled",
    "blocked",
    "column_counts",
    "dependents",
    "find_cycle",
    "integration_passed_event",
    "next_sprint_phase",
    "next_task_phase",
    "progress",
    "sprint_outcome",
    "topological_order",
    "unblocked",
]


class Node(Protocol):
    """Anything with an id and the ids it depends on (a TaskDefinition, a TaskView)."""

    @property
    def id(self) -> str: ...

    @property
    def dependencies(self) -> Sequence[str]: ...


PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
IN_PROGRESS = frozenset({"Running", "Gating", "Merging"})
WAITING = frozenset({"Pending", "Ready"})
DONE = "Completed"
FAILED = "Failed"


@dataclass(frozen=True)
class TaskView:
    """What the scheduler needs to know about one task. `index` is its position in spec.tasks."""

    id: str
    priority: str = "medium"
    dependencies: tuple[str, ...] = ()
    phase: str = "Pending"
    index: int = 0


def _edges(tasks: Iterable[Node]) -> dict[str, list[str]]:
    """id -> the ids it depends on (only those that are tasks of the graph), in definition order."""
    nodes = list(tasks)
    known = {task.id for task in nodes}
    return {task.id: [d for d in task.dependencies if d in known] for task in nodes}


def find_cycle(tasks: Iterable[Node]) -> list[str] | None:
    """A dependency cycle as a closed path, or None.

    Example: a depends on c, b on a, c on b -> ["a", "c", "b", "a"] (a needs c needs b needs a).
    Iterative depth-first search with three colours, so deep chains do not hit the recursion limit.
    """
    graph = _edges(tasks)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in graph:
        if state.get(root):
            continue
        path: list[str] = [root]
        todo: list[list[str]] = [list(reversed(graph[root]))]
        state[root] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            nxt = todo[-1].pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                todo.append(list(reversed(graph[nxt])))
    return None


def topological_order(tasks: Iterable[Node]) -> list[str]:
    """Every id after all of its dependencies; ties keep definition order. ValueError on a cycle."""
    graph = _edges(tasks)
    order: list[str] = []
    done: set[str] = set()
    pending = list(graph)
    while pending:
        ready = [t for t in pending if all(d in done for d in graph[t])]
        if not ready:
            raise ValueError("dependency cycle " + " -> ".join(find_cycle_in(graph) or []))
        order.extend(ready)
        done.update(ready)
        pending = [t for t in pending if t not in done]
    return order


def find_cycle_in(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    return find_cycle(TaskView(id=k, dependencies=tuple(v)) for k, v in graph.items())


def dependents(tasks: Iterable[Node], roots: Iterable[str]) -> dict[str, str]:
    """Every task that (transitively) depends on one of `roots` -> the root it is blocked by."""
    graph = _edges(tasks)
    blocked_by: dict[str, str] = {}
    frontier = list(roots)
    origin = {root: root for root in frontier}
    while frontier:
        current = frontier.pop(0)
        for task, deps in graph.items():
            if current in deps and task not in blocked_by and task not in origin:
                blocked_by[task] = origin[current]
                origin[task] = origin[current]
                frontier.append(task)
    return blocked_by


def _rank(task: TaskView) -> tuple[int, int]:
    return (PRIORITY_RANK.get(task.priority, 1), task.index)


def admit(tasks: Sequence[TaskView], max_parallel: int, operator_slots: int | None = None) -> list[str]:
    """Ids of the tasks to start now, in start order.

    A waiting task (Pending/Ready) is admitted when all its dependencies are Completed: highest priority
    first, then definition order, while fewer than min(max_parallel, operator_slots) are in progress.
    `operator_slots` is how many more containers the operator as a whole may start (None: no limit).
    """
    phases = {task.id: task.phase for task in tasks}
    free = max_parallel - sum(1 for task in tasks if task.phase in IN_PROGRESS)
    if operator_slots is not None:
        free = min(free, operator_slots)
    if free <= 0:
        return []
    ready = [
        task
        for task in tasks
        if task.phase in WAITING and all(phases.get(d) == DONE for d in task.dependencies)
    ]
    return [task.id for task in sorted(ready, key=_rank)[:free]]


def blocked(tasks: Sequence[TaskView]) -> dict[str, str]:
    """Waiting tasks that can never start because a task they (transitively) need has Failed.

    Maps task id -> a reason naming the failed task, e.g. {"report": "dependency 'words' failed"}.
    """
    failed = [task.id for task in tasks if task.phase == FAILED]
    waiting = {task.id for task in tasks if task.phase in WAITING or task.phase == "Blocked"}
    return {
        task: f"dependency {root!r} failed"
        for task, root in dependents(tasks, failed).items()
        if task in waiting
    }


def unblocked(tasks: Sequence[TaskView]) -> list[str]:
    """Blocked tasks whose failed dependency is no longer Failed (it was retried)."""
    still = blocked(tasks)
    return [task.id for task in tasks if task.phase == "Blocked" and task.id not in still]
