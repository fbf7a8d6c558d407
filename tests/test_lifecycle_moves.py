"""Every phase the handlers write is checked against the lifecycle tables."""

from __future__ import annotations

import pytest

from sprint_orchestrator.errors import IllegalTransition
from sprint_orchestrator.lifecycle import SPRINT_TRANSITIONS, TASK_TRANSITIONS, event_for_move


@pytest.mark.parametrize(
    ("old", "new", "event"),
    [
        ("Pending", "Running", "admit"),
        ("Running", "Gating", "container_exited"),
        ("Gating", "Completed", "merged"),
        ("Running", "Completed", "merged"),
        ("Gating", "Review", "gates_failed"),
        ("Review", "Merging", "approve"),
        ("Merging", "Failed", "fail"),
        ("Completed", "Failed", "eject"),
        ("Failed", "Ready", "retry"),
        ("Blocked", "Ready", "unblock"),
    ],
)
def test_a_legal_task_move_names_its_event(old: str, new: str, event: str) -> None:
    assert event_for_move(TASK_TRANSITIONS, old, new) == event


@pytest.mark.parametrize(
    ("old", "new"), [("Completed", "Running"), ("Pending", "Merging"), ("Blocked", "Gating")]
)
def test_an_illegal_task_move_names_state_and_move(old: str, new: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        event_for_move(TASK_TRANSITIONS, old, new)
    assert info.value.state == old and new in info.value.event


def test_a_finished_sprint_cannot_start_again() -> None:
    with pytest.raises(IllegalTransition, match="Completed"):
        event_for_move(SPRINT_TRANSITIONS, "Completed", "Running")
    assert event_for_move(SPRINT_TRANSITIONS, "Integrating", "RolledBack") == "rolled_back"
