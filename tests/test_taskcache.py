"""The sprint loops' Task cache: the newest version of each Task, from the watch and from own writes."""

from __future__ import annotations

from typing import Any

from sprint_orchestrator.handlers.taskcache import TaskCache

KEY = "ns/s"


def task(name: str, version: int, phase: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)},
        "spec": {"sprintRef": "s", "taskId": name},
        "status": {"phase": phase},
    }


def phases(cache: TaskCache) -> dict[str, str]:
    return {t["metadata"]["name"]: t["status"]["phase"] for t in cache.tasks(KEY)}


def test_an_older_watch_event_does_not_undo_a_newer_own_write() -> None:
    cache = TaskCache()
    cache.prime(KEY, [task("a", 5)])
    cache.remember(task("a", 9, "Running"))  # the patch's answer
    cache.remember(task("a", 7, "Ready"))  # the watch, late
    assert phases(cache) == {"a": "Running"}
    cache.remember(task("a", 12, "Completed"))
    assert phases(cache) == {"a": "Completed"}


def test_a_list_drops_deleted_tasks_but_keeps_newer_versions_it_missed() -> None:
    cache = TaskCache()
    cache.prime(KEY, [task("a", 5), task("b", 6)])
    cache.remember(task("a", 20, "Running"))
    cache.prime(KEY, [task("a", 8)])  # a LIST answered before the write; b is gone
    assert phases(cache) == {"a": "Running"}
    assert cache.fresh(KEY) and not cache.fresh("ns/other")
    assert cache.lists == 2


def test_a_deleted_task_is_forgotten_and_a_dropped_sprint_needs_a_list_again() -> None:
    cache = TaskCache()
    cache.prime(KEY, [task("a", 5), task("b", 6)])
    cache.forget(task("b", 7))
    assert phases(cache) == {"a": "Pending"}
    cache.drop(KEY)
    assert cache.tasks(KEY) == [] and not cache.fresh(KEY)


def test_copies_are_handed_out_so_a_round_cannot_change_the_cache() -> None:
    cache = TaskCache()
    cache.prime(KEY, [task("a", 5)])
    copy = cache.tasks(KEY)[0]
    copy["status"] = {"phase": "Failed"}
    assert phases(cache) == {"a": "Pending"}
