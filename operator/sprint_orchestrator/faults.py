"""Fault injection for tests: SIGKILL the operator at a named step boundary.

Production never sets it. `SPRINT_ORCHESTRATOR_FAULTS` (read by settings.py, installed by the start-up
handler with `arm`) names the points, comma-separated, each optionally `@N` to die only on its Nth hit
of this process (default: the first):

    SPRINT_ORCHESTRATOR_FAULTS=main-moved-before-push
    SPRINT_ORCHESTRATOR_FAULTS=task-merged-before-status@2,cleanup

Each `checkpoint(name)` call site sits where a crash is most harmful: a ref moved in git, its record not
yet written to the API server (or the remote). The e2e tests (tests/test_faults_e2e.py) kill the
operator there, restart it without the fault and check that nothing was lost, doubled or misreported.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("sprint_orchestrator.faults")

# Every point the code defines; `arm` refuses any other name, so a typo never silently tests nothing.
POINTS = frozenset(
    {
        "main-moved-before-push",  # gitops/merges.py: main moved in the operator's clone, not yet pushed
        "task-committed-before-status",  # handlers/runner.py: task commit on its branch, Task not updated
        "task-merged-before-status",  # handlers/merging.py: merged into the sprint branch, Task not updated
        "report-committed-before-status",  # handlers/integrate.py: report committed, Sprint not updated
        "cleanup",  # handlers/integrate.py: end-of-sprint cleanup, after the first task's worktree went
        "task-started-before-status",  # handlers/runner.py: the task's container runs, the Task lacks it
        "task-ended-before-remove",  # handlers/runner.py: the attempt's end recorded, its container kept
        "gates-passed-before-status",  # handlers/gating.py: the gates ran, their results not recorded
        "main-pushed-before-status",  # handlers/integrate.py: the remote has main, the Sprint says nothing
    }
)

_armed: dict[str, int] = {}  # point -> the hit that kills
_hits: dict[str, int] = {}
_lock = threading.Lock()


def parse(text: str | None) -> dict[str, int]:
    """ "a,b@3" -> {"a": 1, "b": 3}; ValueError naming the bad entry."""
    armed: dict[str, int] = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, _, nth = entry.partition("@")
        if name not in POINTS:
            known = ", ".join(sorted(POINTS))
            raise ValueError(f"SPRINT_ORCHESTRATOR_FAULTS: unknown fault point {name!r}; known: {known}")
        if nth and (not nth.isdigit() or int(nth) < 1):
            raise ValueError(f"SPRINT_ORCHESTRATOR_FAULTS: {entry!r}: the hit after @ must be a number >= 1")
        armed[name] = int(nth or 1)
    return armed


def arm(text: str | None) -> None:
    """Install the points of SPRINT_ORCHESTRATOR_FAULTS (settings.faults); empty disarms."""
    armed = parse(text)
    with _lock:
        _armed.clear()
        _armed.update(armed)
        _hits.clear()
    if armed:
        log.warning("fault injection armed: %s", ", ".join(f"{k}@{v}" for k, v in sorted(armed.items())))


def checkpoint(name: str) -> None:
    """A step boundary: does nothing unless `name` is armed, then SIGKILLs this process on its Nth hit."""
    if not _armed:
        return
    with _lock:
        nth = _armed.get(name)
        if nth is None:
            return
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] != nth:
            return
    log.warning("fault injection: killing the operator at %s (hit %d)", name, nth)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
