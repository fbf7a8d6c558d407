"""The pure planner: dependency graph, admission, blocking, and the lifecycle tables."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprint_orchestrator import plan
from sprint_orchestrator.errors import IllegalTransition
from sprint_orchestrator.lifecycle import SPRINT_EVENTS, TASK_EVENTS
from sprint_orchestrator.plan import TaskView
from sprint_orchestrator.status import Column, SprintPhase, TaskPhase


def views(*specs: tuple[Any, ...]) -> list[TaskView]:
    """(id, priority, deps, phase) tuples -> TaskViews in definition order."""
    return [
        TaskView(id=i, priority=p, dependencies=tuple(d), phase=ph, index=n)
        for n, (i, p, d, ph) in enumerate(specs)
    ]


DEMO = views(
    ("words", "high", [], "Pending"),
    ("lines", "high", [], "Pending"),
    ("chars", "medium", [], "Pending"),
    ("report", "medium", ["words", "lines", "chars"], "Pending"),
    ("cli", "medium", ["report"], "Pending"),
    ("docs", "low", ["cli"], "Pending"),
)


# --- graph --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": [], "b": ["a"]}, None),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "c", "b", "a"]),
        ({"x": [], "a": ["x", "b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"a": ["missing"]}, None),
    ],
)
def test_find_cycle(edges: dict[str, list[str]], cycle: list[str] | None) -> None:
    assert plan.find_cycle(TaskView(id=k, dependencies=tuple(v)) for k, v in edges.items()) == cycle


def test_topological_order_of_the_demo_keeps_definition_order_among_ties() -> None:
    assert plan.topological_order(DEMO) == ["words", "lines", "chars", "report", "cli", "docs"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="dependency cycle a -> b -> a"):
        plan.topological_order(views(("a", "high", ["b"], "Pending"), ("b", "high", ["a"], "Pending")))


def test_find_cycle_handles_a_chain_deeper_than_the_recursion_limit() -> None:
    chain = [TaskView(id=f"t{i}", dependencies=(f"t{i + 1}",)) for i in range(5000)]
    chain.append(TaskView(id="t5000", dependencies=("t0",)))
    cycle = plan.find_cycle(chain)
    assert cycle is not None and len(cycle) == 5002 and cycle[0] == cycle[-1]


# --- admission ----------------------------------------------------------------------------------


def with_phases(tasks: list[TaskView], **phases: str) -> list[TaskView]:
    return [TaskView(t.id, t.priority, t.dependencies, phases.get(t.id, t.phase), t.index) for t in tasks]


@pytest.mark.parametrize(
    ("phases", "max_parallel", "slots", "admitted"),
    [
        ({}, 5, None, ["words", "lines", "chars"]),
        ({}, 2, None, ["words", "lines"]),
        ({}, 5, 1, ["words"]),
        ({}, 5, 0, []),
        ({"words": "Running", "lines": "Gating"}, 3, None, ["chars"]),
        ({"words": "Running", "lines": "Merging", "chars": "Running"}, 3, None, []),
        ({"words": "Completed", "lines": "Completed", "chars": "Review"}, 5, None, []),
        ({"words": "Completed", "lines": "Completed", "chars": "Completed"}, 5, None, ["report"]),
        ({"words": "Completed", "lines": "Ready", "chars": "Failed"}, 5, None, ["lines"]),
    ],
)
def test_admit(phases: dict[str, str], max_parallel: int, slots: int | None, admitted: list[str]) -> None:
    assert plan.admit(with_phases(DEMO, **phases), max_parallel, slots) == admitted


def test_admit_orders_by_priority_then_definition_order() -> None:
    tasks = views(
        ("low1", "low", [], "Ready"),
        ("med1", "medium", [], "Ready"),
        ("high1", "high", [], "Pending"),
        ("med2", "medium", [], "Pending"),
        ("high2", "high", [], "Ready"),
    )
    assert plan.admit(tasks, 10) == ["high1", "high2", "med1", "med2", "low1"]
    assert plan.admit(tasks, 3) == ["high1", "high2", "med1"]


def test_blocked_names_the_failed_dependency_transitively() -> None:
    tasks = with_phases(DEMO, words="Completed", lines="Failed", chars="Running")
    assert plan.blocked(tasks) == {
        "report": "dependency 'lines' failed",
        "cli": "dependency 'lines' failed",
        "docs": "dependency 'lines' failed",
    }


def test_a_retried_dependency_unblocks_its_dependents() -> None:
    tasks = with_phases(DEMO, lines="Ready", report="Blocked", cli="Blocked", docs="Blocked")
    assert plan.blocked(tasks) == {}
    assert plan.unblocked(tasks) == ["report", "cli", "docs"]


# --- properties on random graphs ----------------------------------------------------------------

PHASES = [p.value for p in TaskPhase]


@st.composite
def dags(draw: st.DrawFn) -> list[TaskView]:
    """Random DAGs: a task may only depend on tasks defined before it; random phases and priorities."""
    n = draw(st.integers(min_value=1, max_value=25))
    tasks = []
    for i in range(n):
        deps = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=4)) if i else set()
        tasks.append(
            TaskView(
                id=f"t{i}",
                priority=draw(st.sampled_from(["high", "medium", "low"])),
                dependencies=tuple(f"t{d}" for d in sorted(deps)),
                phase=draw(st.sampled_from(PHASES)),
                index=i,
            )
        )
    order = draw(st.permutations(tasks))  # definition order need not be topological
    return [TaskView(t.id, t.priority, t.dependencies, t.phase, n) for n, t in enumerate(order)]


@given(dags(), st.integers(min_value=1, max_value=8), st.one_of(st.none(), st.integers(0, 8)))
def test_admit_never_exceeds_capacity_nor_admits_unready_tasks(
    tasks: list[TaskView], max_parallel: int, slots: int | None
) -> None:
    by_id = {t.id: t for t in tasks}
    admitted = plan.admit(tasks, max_parallel, slots)
    running = sum(1 for t in tasks if t.phase in ("Running", "Gating", "Merging"))
    assert running + len(admitted) <= max(max_parallel, running)
    assert slots is None or len(admitted) <= slots
    assert len(set(admitted)) == len(admitted)
    for task_id in admitted:
        assert by_id[task_id].phase in ("Pending", "Ready")
        assert all(by_id[d].phase == "Completed" for d in by_id[task_id].dependencies)


@given(dags())
def test_topological_order_respects_every_edge(tasks: list[TaskView]) -> None:
    order = plan.topological_order(tasks)
    position = {task_id: n for n, task_id in enumerate(order)}
    assert sorted(order) == sorted(t.id for t in tasks)
    assert plan.find_cycle(tasks) is None
    for task in tasks:
        assert all(position[d] < position[task.id] for d in task.dependencies)


@given(dags(), st.data())
def test_an_injected_back_edge_is_found_as_a_real_cycle(tasks: list[TaskView], data: st.DataObject) -> None:
    ancestors = [t for t in tasks if t.dependencies]
    if not ancestors:
        tasks = [*tasks, TaskView(id="extra", dependencies=(tasks[0].id,))]
        ancestors = [tasks[-1]]
    child = data.draw(st.sampled_from(ancestors))
    parent = data.draw(st.sampled_from(child.dependencies))
    edited = [
        TaskView(t.id, dependencies=(*t.dependencies, child.id)) if t.id == parent else t for t in tasks
    ]
    cycle = plan.find_cycle(edited)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) >= 3
    edges = {t.id: set(t.dependencies) for t in edited}
    assert all(b in edges[a] for a, b in pairwise(cycle))


# --- lifecycle tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "events", "final"),
    [
        ("Pending", ["start", "admit", "container_exited", "merged"], "Completed"),
        ("Ready", ["admit", "merged"], "Completed"),  # no gate: merged when its container ends
        ("Ready", ["admit", "container_exited", "gates_failed", "approve", "merged"], "Completed"),
        ("Ready", ["admit", "container_exited", "gates_failed", "approve", "conflict", "retry"], "Ready"),
        ("Ready", ["admit", "container_exited", "fail", "retry"], "Ready"),  # a conflict at the merge
        ("Ready", ["admit", "retry", "admit", "fail", "retry"], "Ready"),
        ("Pending", ["block", "unblock", "admit", "cancel"], "Failed"),
    ],
)
def test_task_lifecycle_walks(phase: str, events: list[str], final: str) -> None:
    for event in events:
        phase = plan.next_task_phase(phase, event)
    assert phase == final


@pytest.mark.parametrize(
    ("phase", "event"),
    [("Completed", "retry"), ("Pending", "merged"), ("Review", "container_exited"), ("Failed", "approve")],
)
def test_illegal_task_transition_names_state_and_event(phase: str, event: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        plan.next_task_phase(phase, event)
    assert (info.value.state, info.value.event) == (phase, event)
    assert repr(event) in str(info.value) and repr(phase) in str(info.value)


@pytest.mark.parametrize(
    ("events", "final"),
    [
        (["initialize", "initialized", "all_tasks_settled", "integration_passed"], "Completed"),
        (["initialize", "initialized", "all_tasks_settled", "integration_passed_partial"], "Partial"),
        (["initialize", "initialized", "all_tasks_settled", "rolled_back"], "RolledBack"),
        (["initialize", "initialized", "all_tasks_settled", "failed"], "Failed"),
        (["initialize", "init_failed"], "Failed"),
        (["initialize", "initialized", "cancel"], "Failed"),
    ],
)
def test_sprint_lifecycle_walks(events: list[str], final: str) -> None:
    phase = "Pending"
    for event in events:
        phase = plan.next_sprint_phase(phase, event)
    assert phase == final


def test_tables_use_only_declared_phases_and_events() -> None:
    for table, phases, events in (
        (plan.TASK_TRANSITIONS, {p.value for p in TaskPhase}, set(TASK_EVENTS)),
        (plan.SPRINT_TRANSITIONS, {p.value for p in SprintPhase}, set(SPRINT_EVENTS)),
    ):
        assert set(table) == phases
        assert {e for moves in table.values() for e in moves} == events
        assert {p for moves in table.values() for p in moves.values()} <= phases


def test_terminal_sprint_phases_accept_no_event() -> None:
    for phase in ("Completed", "Partial", "Failed", "RolledBack"):
        for event in SPRINT_EVENTS:
            with pytest.raises(IllegalTransition):
                plan.next_sprint_phase(phase, event)


def test_every_task_phase_has_a_board_column() -> None:
    assert set(plan.COLUMN_OF_PHASE) == {p.value for p in TaskPhase}
    assert set(plan.COLUMN_OF_PHASE.values()) == {c.value for c in Column}


def test_column_counts_and_progress() -> None:
    phases = ["Completed", "Running", "Gating", "Review", "Blocked", "Failed"]
    assert plan.column_counts(phases) == {
        "ready": 1,
        "in-progress": 2,
        "review": 1,
        "completed": 1,
        "failed": 1,
    }
    assert plan.progress(phases) == "1/6"


@pytest.mark.parametrize(
    ("phases", "settled", "outcome", "event"),
    [
        (["Completed", "Completed"], True, "Completed", "integration_passed"),
        (["Completed", "Blocked", "Failed"], True, "Partial", "integration_passed_partial"),
        (["Completed", "Review", "Blocked"], False, "Partial", "integration_passed_partial"),
        ([], False, "Failed", "failed"),
        (["Failed", "Blocked"], True, "Failed", "failed"),
        (["Completed", "Running"], False, "Partial", "integration_passed_partial"),
    ],
)
def test_sprint_outcome(phases: list[str], settled: bool, outcome: str, event: str) -> None:
    assert plan.all_settled(phases) is settled
    assert plan.sprint_outcome(phases) == outcome
    assert plan.integration_passed_event(phases) == event
