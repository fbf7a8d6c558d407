"""Admission's one decision point, asked by the sprint loop and by a runner handing off its slot: the
decisions are serialised and made on the Tasks as the cache holds them, so a slot is filled once.

The Kubernetes write of an admission is played by `Rec.admit` below, which does what the reconciler's
does to the cache (its patch's answer is remembered, newer by resourceVersion); the rest is the code
the operator runs (plan.admit, counts.task_views, the TaskCache)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from sprint_orchestrator.handlers import admission, merging
from sprint_orchestrator.handlers.taskcache import TaskCache
from sprint_orchestrator.model import SprintSpec, validate_sprint_spec
from sprint_orchestrator.plan import TaskView

KEY = "ns/s"


def spec(count: int, slots: int) -> SprintSpec:
    tasks = [{"id": f"t{i}", "title": f"task {i}"} for i in range(count)]
    return validate_sprint_spec({"maxParallelTasks": slots, "tasks": tasks})


def task(task_id: str, version: int, phase: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"s-{task_id}", "namespace": "ns", "resourceVersion": str(version)},
        "spec": {"sprintRef": "s", "taskId": task_id},
        "status": {"phase": phase},
    }


class Rec:
    """What admission.py uses of a SprintReconciler; `admit` writes to the cache as its patch does."""

    def __init__(self, phases: dict[str, str], slots: int = 2) -> None:
        self.key, self.phase, self.closed, self.finishing = KEY, "Running", False, 0
        self.ctx = SimpleNamespace(task_cache=TaskCache(), wake=lambda key: self.woken.append(key))
        self.admitting = asyncio.Lock()
        self.admitted: list[str] = []
        self.woken: list[str] = []
        self.version = 100
        self.spec = spec(len(phases), slots)
        self.latest: tuple[dict[str, Any], SprintSpec] | None = ({}, self.spec)
        self.log = SimpleNamespace(warning=lambda *args: None)
        self.ctx.task_cache.prime(KEY, [task(i, 1, p) for i, p in phases.items()])

    def operator_slots(self) -> int:
        return 50

    def write(self, task_id: str, phase: str) -> None:
        self.version += 1
        self.ctx.task_cache.remember(task(task_id, self.version, phase))

    async def admit(self, body: dict[str, Any], spec: SprintSpec, one: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # the patch's round trip: another decision may try to run meanwhile
        self.write(one["spec"]["taskId"], "Running")
        one["status"] = {"phase": "Running"}
        self.admitted.append(one["spec"]["taskId"])

    def round_copies(self) -> list[dict[str, Any]]:
        tasks = admission.cached_tasks(self, self.spec)
        assert tasks is not None
        return tasks


def test_a_finished_task_is_seen_in_its_new_phase_and_the_others_are_unchanged() -> None:
    views = [TaskView("a", phase="Merging"), TaskView("b", phase="Ready", index=1)]
    after = admission.views_after(views, {"a": "Completed"})
    assert [(v.id, v.phase, v.index) for v in after] == [("a", "Completed", 0), ("b", "Ready", 1)]


def test_a_hand_off_fills_the_finished_tasks_slot_before_its_final_status_is_written() -> None:
    rec = Rec({"t0": "Merging", "t1": "Running", "t2": "Ready", "t3": "Ready"})
    asyncio.run(admission.hand_off(rec, "t0", "Completed"))
    assert rec.admitted == ["t2"]


def test_a_round_holding_copies_from_before_a_hand_off_does_not_admit_again() -> None:
    rec = Rec({"t0": "Running", "t1": "Running", "t2": "Ready", "t3": "Ready"})
    stale = rec.round_copies()  # the round began; then t0 finished and handed its slot to t2
    rec.write("t0", "Completed")
    asyncio.run(admission.hand_off(rec, "t0", "Completed"))
    assert rec.admitted == ["t2"]
    assert asyncio.run(admission.admit_ready(rec, {}, rec.spec, stale)) == []
    assert [t["status"]["phase"] for t in stale] == ["Completed", "Running", "Running", "Ready"]


def test_a_round_and_two_hand_offs_at_once_fill_each_free_slot_once() -> None:
    rec = Rec({"t0": "Merging", "t1": "Merging", "t2": "Ready", "t3": "Ready", "t4": "Ready"})

    async def finish(task_id: str, phase: str) -> None:  # as merging._finish: write and hand off
        async def write() -> None:
            await asyncio.sleep(0)
            rec.write(task_id, phase)

        await asyncio.gather(write(), admission.hand_off(rec, task_id, phase))

    async def together() -> None:
        stale = rec.round_copies()
        await asyncio.gather(
            finish("t0", "Completed"), admission.admit_ready(rec, {}, rec.spec, stale), finish("t1", "Failed")
        )
        await admission.admit_ready(rec, {}, rec.spec, rec.round_copies())  # the round they woke

    asyncio.run(together())
    assert sorted(rec.admitted) == ["t2", "t3"]  # two slots; t4 waits for the next free one


def test_no_hand_off_once_the_sprint_left_running_or_its_loop_closed_or_a_task_is_missing() -> None:
    for change in ("phase", "closed", "latest", "missing"):
        rec = Rec({"t0": "Merging", "t1": "Ready"})
        if change == "phase":
            rec.phase = "Integrating"
        elif change == "closed":
            rec.closed = True
        elif change == "latest":
            rec.latest = None
        else:
            rec.spec = spec(3, 2)  # t2 has no Task yet: the loop creates it and decides
            rec.latest = ({}, rec.spec)
        asyncio.run(admission.hand_off(rec, "t0", "Completed"))
        assert rec.admitted == [], change


def test_a_failing_hand_off_is_logged_and_leaves_the_admission_to_the_round() -> None:
    rec = Rec({"t0": "Merging", "t1": "Ready"})
    warnings: list[tuple[Any, ...]] = []
    rec.log = SimpleNamespace(warning=lambda *args: warnings.append(args))

    async def refused(body: dict[str, Any], spec: SprintSpec, one: dict[str, Any]) -> None:
        raise ConnectionError("the API server is away")

    rec.admit = refused  # type: ignore[method-assign]
    asyncio.run(admission.hand_off(rec, "t0", "Completed"))
    assert warnings and "t0" in warnings[0]


def test_a_finishing_task_writes_its_status_hands_off_its_slot_then_wakes_the_loop_once() -> None:
    rec = Rec({"t0": "Merging", "t1": "Running", "t2": "Ready", "t3": "Ready"})
    seen: list[int] = []

    async def patch_task(one: dict[str, Any], status: dict[str, Any], why: str | None) -> None:
        seen.append(rec.finishing)  # a round meanwhile leaves the counts to the round woken after
        await asyncio.sleep(0)
        rec.write(one["spec"]["taskId"], status["phase"])

    rec.patch_task = patch_task  # type: ignore[attr-defined]
    finished = rec.ctx.task_cache.tasks(KEY)[0]
    asyncio.run(merging._finish(rec, finished, {"phase": "Completed"}))
    assert rec.admitted == ["t2"] and seen == [1] and rec.finishing == 0
    assert rec.woken == [KEY]
    assert rec.ctx.task_cache.get(KEY, "s-t0")["status"]["phase"] == "Completed"
