"""Two status writers never overwrite each other's conditions: each sets its own types, merged by type
into what the API server has, with the resourceVersion it read as the write's precondition. On the real
kube-apiserver (a JSON merge patch replaces a list whole, which is what goes wrong without this)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from _e2e import apply, suspended_sprint
from localcluster import LocalCluster
from sprint_orchestrator.handlers.conditions import merge_conditions, set_condition
from sprint_orchestrator.kube import SPRINTS, Kube

pytestmark = [pytest.mark.cluster]
T = "2026-01-01T00:00:00Z"


@pytest.fixture
def kubes(cluster: LocalCluster) -> Iterator[tuple[Kube, Kube]]:
    """Two clients, as two writers (the sprint loop and the spec check) each have their own view."""
    one, two = Kube.from_kubeconfig(str(cluster.kubeconfig)), Kube.from_kubeconfig(str(cluster.kubeconfig))
    yield one, two
    one.close()
    two.close()


def conditions_of(kube: Kube, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    body = kube.get(SPRINTS, namespace, name) or {}
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def update(kind: str, value: bool, why: str) -> list[dict[str, Any]]:
    return set_condition(None, kind, value, why, why, T)


def test_a_writer_holding_an_older_copy_keeps_the_condition_another_wrote_meanwhile(
    cluster: LocalCluster, namespace: str, kubes: tuple[Kube, Kube]
) -> None:
    loop, spec_check = kubes
    apply(cluster, namespace, suspended_sprint("conds"))
    stale = (loop.get(SPRINTS, namespace, "conds") or {}).get("status") or {}
    calls = []

    def loop_merge(current: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        calls.append(current)
        if len(calls) == 1:  # between the loop's read and its write, the spec check writes Ready
            spec_check.patch_status_merged(
                SPRINTS,
                namespace,
                "conds",
                {},
                lambda now: merge_conditions(now, update("Ready", True, "Accepted"), T),
            )
        return merge_conditions(current, update("Pushed", False, "PushRefused"), T)

    loop.patch_status_merged(SPRINTS, namespace, "conds", {"message": "refused"}, loop_merge)
    assert len(calls) == 2, "the loop's first write should have met the 409 of its stale resourceVersion"
    found = conditions_of(loop, namespace, "conds")
    assert found["Ready"]["status"] == "True" and found["Pushed"]["reason"] == "PushRefused"

    # What the merge prevents: the same two writes as whole lists from the copy read before.
    whole = set_condition(stale.get("conditions"), "Integrated", True, "TestsPassed", "ok", T)
    loop.patch_status(SPRINTS, namespace, "conds", {"conditions": whole})
    assert set(conditions_of(loop, namespace, "conds")) == {"Integrated"}  # Ready and Pushed are gone


def test_two_concurrent_writers_of_different_conditions_both_keep_their_last_value(
    cluster: LocalCluster, namespace: str, kubes: tuple[Kube, Kube]
) -> None:
    apply(cluster, namespace, suspended_sprint("racing"))
    start = threading.Barrier(2)
    rounds = 25
    errors: list[BaseException] = []

    def writer(kube: Kube, kind: str) -> None:
        try:
            start.wait(timeout=60)
            for i in range(rounds):
                ups = update(kind, i % 2 == 0, f"{kind}-{i}")
                kube.patch_status_merged(
                    SPRINTS, namespace, "racing", {}, lambda now, u=ups: merge_conditions(now, u, T)
                )
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(kubes[0], "Pushed")),
        threading.Thread(target=writer, args=(kubes[1], "Ready")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    found = conditions_of(kubes[0], namespace, "racing")
    last = rounds - 1
    assert found["Pushed"]["reason"] == f"Pushed-{last}" and found["Ready"]["reason"] == f"Ready-{last}"
    assert found["Pushed"]["status"] == found["Ready"]["status"] == ("True" if last % 2 == 0 else "False")
