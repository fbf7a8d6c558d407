"""The Kubernetes API writes of one task, counted on the real kube-apiserver (bench/scale.py measures
them at 1,000 tasks): a watch on the namespace's Tasks sees every version the API server held, so each
MODIFIED is one write. A task is Pending from its creation (the CRD's defaults) and makes one status
write per phase change after it (the container's start, stamps, attempt and reason go with them; the
merge's outcome with the end of its run or of its gates), and one Event per step: its PhaseChanged
Events, none repeating them on the Sprint; the Sprint's counts at most once a second while its tasks
run. The operator as a real
process, real git, real Podman running the demo team."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, demo_sprint, operator_process, recipe
from localcluster import LocalCluster
from sprint_orchestrator.handlers.reconcile import COUNTS_EVERY_S
from sprint_orchestrator.kube import SPRINTS, TASKS, Kube
from sprint_orchestrator.status import TaskStatus
from test_lifecycle_e2e import config, events_in, seed_repository, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]


class Versions(threading.Thread):
    """Every version of the namespace's Tasks (or Sprints) the API server held, by name, in order: a
    watch from the version of a list made before the Sprint exists, resumed from the last version it
    saw. `seen` has when each arrived (time.monotonic())."""

    def __init__(self, kube: Kube, namespace: str, resource: Any = TASKS) -> None:
        super().__init__(daemon=True, name="versions")
        self.kube, self.namespace, self.resource = kube, namespace, resource
        self.versions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.seen: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.done = threading.Event()
        _, self.version = kube.list_versioned(resource, namespace)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                for kind, obj in self.kube.watch(
                    self.resource, self.namespace, self.version, timeout_seconds=5
                ):
                    self.version = str(obj["metadata"].get("resourceVersion") or self.version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        name = obj["metadata"]["name"]
                        self.versions.setdefault(name, []).append((kind, obj.get("status") or {}))
                        self.seen.setdefault(name, []).append(time.monotonic())
            except Exception as exc:  # a gap would miscount: the test fails on it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)


def phase_changes(versions: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The phases a Task went through, in order, each once per change."""
    phases: list[str] = []
    for _, status in versions:
        phase = str(status.get("phase") or "")
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
    return phases


def test_a_task_writes_its_status_once_per_phase_change_and_posts_one_event_per_step(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# budget\n"})
    recipes = tmp_path / "recipes"
    for name in ("noop", "more0", "more1", "more2"):  # an empty recipe: the team changes nothing
        (recipes / name).mkdir(parents=True)
    recipe(recipes, "gated", "out/gated.txt")
    tasks = [
        {"id": "noop", "title": "changes nothing", "allowNoChanges": True},
        # more tasks moving their columns at once: the Sprint's counts follow them, throttled
        *({"id": f"more{i}", "title": "changes nothing", "allowNoChanges": True} for i in range(3)),
        {
            "id": "gated",
            "title": "writes a file",
            "filesToModify": ["out/gated.txt"],
            "testRequirements": ["test -s out/gated.txt"],
        },
    ]
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    watcher, sprints = Versions(kube, namespace), Versions(kube, namespace, SPRINTS)
    watcher.start()
    sprints.start()
    try:
        state, log = tmp_path / "state", tmp_path / "op.log"
        with operator_process(cluster, namespace, state, log, **config(tmp_path)):
            apply(cluster, namespace, demo_sprint("budget", repo, recipes, tasks))
            status = wait_terminal(cluster, namespace, "budget")
    finally:
        watcher.stop()
        sprints.stop()
        kube.close()
    assert status["phase"] == "Completed", status.get("message")
    assert not watcher.errors and not sprints.errors, (watcher.errors, sprints.errors)
    walks = {
        # merged in the write that ends the container's run (no gate), or the gating: never Merging
        "budget-noop": ["Pending", "Running", "Completed"],
        "budget-gated": ["Pending", "Running", "Gating", "Completed"],
    }
    for name, walk in walks.items():
        versions = watcher.versions[name]
        assert phase_changes(versions) == walk, versions
        assert versions[0] == ("ADDED", TaskStatus.CREATED)  # Pending from its creation: the CRD's defaults
        writes = [status for kind, status in versions if kind == "MODIFIED"]
        assert len(writes) == len(walk) - 1, [s.get("phase") for s in writes]  # one per phase change
        final = writes[-1]
        assert final["attempt"] == 1 and final["containerName"] and final["baseCommit"]
        assert final["containerStartedAt"] and final["containerHealth"] == "exited"
    events = events_in(cluster, namespace)
    moves = [e["message"] for e in events if e["involvedObject"]["name"] == "budget-noop"]
    assert sorted(moves) == [
        "Pending -> Running (admit): attempt 1",
        "Running -> Completed (merged): NoChanges",
    ]
    moves = [e["message"] for e in events if e["involvedObject"]["name"] == "budget-gated"]
    assert sorted(m.split(":")[0] for m in moves) == [
        "Gating -> Completed (merged)",
        "Pending -> Running (admit)",
        "Running -> Gating (container_exited)",
    ]
    on_sprint = [e["reason"] for e in events if "task noop" in e["message"]]
    assert on_sprint == []  # nothing repeats the Task's own Events on the Sprint

    # The Sprint's board counts follow its tasks at most once a second while they run (the reconciler's
    # COUNTS_EVERY_S); the final counts go with the move to Integrating, and count every task.
    versions = list(zip(sprints.seen["budget"], sprints.versions["budget"], strict=True))
    running = [seen for seen, (_, status) in versions if status.get("phase") == "Running"]
    changes = [
        seen
        for (_, (_, before)), (seen, (_, status)) in itertools.pairwise(versions)
        if status.get("phase") == "Running"
        and (status.get("columns"), status.get("tokens")) != (before.get("columns"), before.get("tokens"))
    ]
    assert len(changes) <= 1 + (running[-1] - running[0]) / COUNTS_EVERY_S, (changes, running)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(changes)]
    assert all(gap > 0.3 for gap in gaps), gaps  # 1 s apart when written; the watch's jitter
    assert status["columns"]["completed"] == len(tasks) and status["progress"] == f"{len(tasks)}/{len(tasks)}"
