"""What goes with a task Pod: its NetworkPolicy, its Secret referenced by name, its Task as owner."""

from __future__ import annotations

import json
from typing import Any

from sprint_orchestrator.runtime import Limits, podnet, podspec

TASK = {"metadata": {"name": "s-t", "namespace": "ns", "uid": "1234-abcd"}}


def _run(**changes: Any) -> podspec.PodRun:
    values: dict[str, Any] = {
        "name": "so-s-t-1", "namespace": "ns", "image": "reg:5000/img:1", "command": ["claude", "-p", "x"],
        "transfer_url": "http://10.0.0.1:4000/t/token", "labels": {podnet.LABEL_POD: "so-s-t-1"},
        "limits": Limits(cpus=1, memory_bytes=256 << 20), "timeout_s": 60, "environment": {"A": "1"},
        "upload": True,
    }  # fmt: skip
    return podspec.PodRun(**{**values, **changes})


def test_the_policy_selects_only_its_pod_denies_ingress_and_allows_the_operators_two_ports() -> None:
    policy = podnet.network_policy("so-s-t-1", "ns", {}, "10.0.0.1", [4001, 4000, 4001], [])
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {podnet.LABEL_POD: "so-s-t-1"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    assert spec["egress"] == [
        {
            "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
            "ports": [{"protocol": "TCP", "port": 4000}, {"protocol": "TCP", "port": 4001}],
        }
    ]


def test_in_a_pod_the_operator_is_reached_by_its_pods_labels_and_a_service_name_needs_dns() -> None:
    """The operator listening on every address behind a Service: NetworkPolicy sees the Pod's address
    after the Service's is translated, so the peer is the operator's Pods, not an ipBlock of 0.0.0.0."""
    policy = podnet.network_policy("so-s-t-1", "ns", {}, "0.0.0.0", [8081, 4001], [], "so-system", dns=True)
    to_operator, to_dns = policy["spec"]["egress"]
    assert to_operator["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "so-system"}},
            "podSelector": {"matchLabels": podnet.OPERATOR_POD_LABELS},
        }
    ]
    assert [p["port"] for p in to_operator["ports"]] == [4001, 8081]
    assert to_dns == {"to": [podnet.KUBE_SYSTEM], "ports": [{"protocol": "UDP", "port": 53},
                                                          {"protocol": "TCP", "port": 53}]}  # fmt: skip
    outside = podnet.network_policy("so-s-t-1", "ns", {}, "10.0.0.1", [4000], [], "so-system")
    assert outside["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert len(outside["spec"]["egress"]) == 1


def test_the_credential_reaches_the_pod_by_secret_reference_never_as_a_value_in_its_spec() -> None:
    pod = podspec.manifest(_run(secret="so-s-t-1", secret_keys=["ANTHROPIC_API_KEY"]))
    [main] = pod["spec"]["containers"]
    [entry] = [e for e in main["env"] if e["name"] == "ANTHROPIC_API_KEY"]
    assert entry == {
        "name": "ANTHROPIC_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "so-s-t-1", "key": "ANTHROPIC_API_KEY"}},
    }
    assert "initContainers" not in pod["spec"]  # one container: the key reaches nothing else
    secret = podnet.secret("so-s-t-1", "ns", {}, {"ANTHROPIC_API_KEY": "sk-so-attempt-x"}, [])
    assert secret["stringData"] == {"ANTHROPIC_API_KEY": "sk-so-attempt-x"}
    assert "sk-so-attempt-x" not in json.dumps(pod)


def test_the_task_owns_pod_secret_and_policy_in_its_own_namespace_only() -> None:
    owners = podnet.owner_reference(TASK, "ns")
    assert owners == [
        {
            "apiVersion": "sprintorchestrator.dev/v1alpha1",
            "kind": "Task",
            "name": "s-t",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert podspec.manifest(_run(owners=owners))["metadata"]["ownerReferences"] == owners
    assert (
        podnet.network_policy("p", "ns", {}, "10.0.0.1", [1], owners)["metadata"]["ownerReferences"] == owners
    )
    assert podnet.owner_reference(TASK, "other") == []  # a cross-namespace owner would get it collected
    assert podnet.owner_reference({"metadata": {"name": "s-t", "namespace": "ns"}}, "ns") == []
    assert podnet.owner_reference(None, "ns") == []
    assert "ownerReferences" not in podspec.manifest(_run())["metadata"]
