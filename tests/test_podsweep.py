"""The pods runtime's start-up sweep decides from listings alone: the one-shot Pods an earlier process of
this operator left, and the fences (NetworkPolicy, Secret) whose Pod is gone; never this process's, nor
another operator's, nor a fence whose Pod still runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sprint_orchestrator.runtime import LABEL_INSTANCE, LABEL_OWNER, LABEL_ROLE, podnet
from sprint_orchestrator.runtime.podsweep import Leftover, Sweep, decide, owner_id

OWNER, NOW, EARLIER = "o" * 32, "now", "earlier"


def _labels(name: str, role: str, owner: str | None, instance: str | None) -> dict[str, str]:
    labels = {LABEL_ROLE: role, podnet.LABEL_POD: name}
    if owner is not None:
        labels[LABEL_OWNER] = owner
    if instance is not None:
        labels[LABEL_INSTANCE] = instance
    return labels


def pod(
    name: str,
    role: str = "task",
    owner: str | None = OWNER,
    instance: str | None = EARLIER,
    going: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(name, role, owner, instance), "uid": f"u-{name}"}
    if going:
        meta["deletionTimestamp"] = "2026-12-07T08:00:00Z"
    return {"metadata": meta}


def policy(
    name: str, role: str = "task", owner: str | None = OWNER, instance: str | None = EARLIER
) -> dict[str, Any]:
    made = podnet.network_policy(name, "ns", _labels(name, role, owner, instance), "10.0.0.1", [1, 2], [])
    made["metadata"].update(uid=f"p-{name}", resourceVersion="7")
    return made


def secret(name: str, owner: str | None = OWNER, instance: str | None = EARLIER) -> dict[str, Any]:
    made = podnet.secret(name, "ns", _labels(name, "task", owner, instance), {"KEY": "v"}, [])
    made["metadata"].update(uid=f"s-{name}", resourceVersion="9")
    return made


def test_only_the_one_shot_pods_an_earlier_process_of_this_operator_left_are_removed() -> None:
    pods = [
        pod("so-oneshot-earlier", "oneshot"),
        pod("so-oneshot-ours", "oneshot", instance=NOW),  # this process's gate, just started
        pod("so-oneshot-theirs", "oneshot", owner="another-operator"),
        pod("so-oneshot-old", "oneshot", owner=None, instance=None),  # a version without the labels
        pod("so-oneshot-no-instance", "oneshot", instance=None),
        pod("so-s-t-1", "task"),  # a task Pod is adopted, never pruned
    ]
    assert decide(pods, [], OWNER, NOW).pods == ("so-oneshot-earlier",)


def test_a_policy_whose_pod_is_gone_is_deleted_as_read_while_a_running_pods_policy_stays() -> None:
    pods = [pod("so-s-live-1"), pod("so-oneshot-ours", "oneshot", instance=NOW)]
    policies = [policy("so-s-live-1"), policy("so-s-gone-1"), policy("so-oneshot-gone", "oneshot")]
    sweep = decide(pods, policies, OWNER, NOW)
    assert sweep.gone == (
        Leftover("NetworkPolicy", "so-oneshot-gone", "p-so-oneshot-gone", "7"),
        Leftover("NetworkPolicy", "so-s-gone-1", "p-so-s-gone-1", "7"),
    )
    assert sweep.going == () and sweep.pods == ()


def test_fences_of_this_process_of_other_operators_and_of_older_versions_stay_without_their_pod() -> None:
    """This process puts a fence before it creates the Pod: seen between the two, it must not go."""
    policies = [
        policy("so-s-new-1", instance=NOW),
        policy("so-s-theirs-1", owner="another-operator"),
        policy("so-s-old-1", owner=None, instance=None),
        policy("so-s-odd-1", role="reviewer"),
    ]
    assert decide([], policies, OWNER, NOW) == Sweep()


def test_a_policy_counts_only_if_it_is_named_and_labelled_for_the_pod_it_selects() -> None:
    renamed = policy("so-s-a-1")
    renamed["metadata"]["name"] = "so-s-b-1"  # its label says another Pod
    wider = policy("so-s-c-1")
    wider["spec"]["podSelector"]["matchLabels"]["app"] = "x"
    expressions = policy("so-s-d-1")
    expressions["spec"]["podSelector"]["matchExpressions"] = [{"key": "a", "operator": "Exists"}]
    assert decide([], [renamed, wider, expressions], OWNER, NOW) == Sweep()


def test_a_policy_stays_while_any_pod_it_selects_exists_whoever_labelled_that_pod() -> None:
    stranger = pod("not-ours", owner="another-operator", instance="x")
    stranger["metadata"]["labels"][podnet.LABEL_POD] = "so-s-t-1"  # selected by our policy all the same
    assert decide([stranger], [policy("so-s-t-1")], OWNER, NOW) == Sweep()


def test_the_fence_of_a_pod_being_removed_goes_once_the_pod_is_gone() -> None:
    pods = [pod("so-oneshot-earlier", "oneshot"), pod("so-s-ending-1", going=True)]
    policies = [policy("so-oneshot-earlier", "oneshot"), policy("so-s-ending-1")]
    sweep = decide(pods, policies, OWNER, NOW, [secret("so-s-ending-1")])
    assert sweep.pods == ("so-oneshot-earlier",) and sweep.gone == ()
    assert sweep.after() == {
        "so-oneshot-earlier": {"NetworkPolicy": ("p-so-oneshot-earlier", "7")},
        "so-s-ending-1": {"NetworkPolicy": ("p-so-s-ending-1", "7"), "Secret": ("s-so-s-ending-1", "9")},
    }


def test_a_gone_pods_secret_is_read_by_name_and_deleted_before_its_policy_if_it_is_ours() -> None:
    policies = [policy("so-s-a-1"), policy("so-s-b-1"), policy("so-s-c-1")]
    first = decide([], policies, OWNER, NOW)
    assert first.names() == ["so-s-a-1", "so-s-b-1", "so-s-c-1"]
    secrets = [
        secret("so-s-a-1"),
        secret("so-s-b-1", owner="another-operator"),
        secret("so-s-c-1", instance=NOW),
        secret("so-s-unasked-1"),
    ]
    sweep = decide([], policies, OWNER, NOW, secrets)
    assert [(f.kind, f.name) for f in sweep.gone] == [
        ("Secret", "so-s-a-1"),
        ("NetworkPolicy", "so-s-a-1"),
        ("NetworkPolicy", "so-s-b-1"),
        ("NetworkPolicy", "so-s-c-1"),
    ]


def test_the_operators_id_is_kept_across_restarts_and_made_again_when_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "owner"
    first = owner_id(path)
    assert len(first) == 32 and owner_id(path) == first
    path.write_text("../../not an id\n")
    again = owner_id(path)
    assert again != first and owner_id(path) == again
    assert owner_id(tmp_path / "elsewhere") != again
