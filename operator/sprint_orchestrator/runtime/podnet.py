"""What goes with each task and gate Pod: its NetworkPolicy, its Secret, its owner. Pure manifests.

- **NetworkPolicy** (one per Pod, named like it, selecting it by `LABEL_POD`): no ingress at all, and
  egress only to the operator's address (`ipBlock` /32) on its two ports, the workspace transfer and the
  metering proxy's TCP listener. No DNS, no apiserver, no other Pod, no other host port: both endpoints
  are IP addresses. It is created before the Pod, so the Pod is never admitted without it (a CNI may
  still need a moment to program a new Pod's rules; the wrapper's workspace fetch comes before the command).
- **Secret** (per attempt, named like the Pod): the values of `TaskRunSpec.secrets` (for an agent team,
  its metering-proxy credential under the key variables its CLI reads). The Pod's env references them by
  `secretKeyRef`, so the values are in no Pod spec, `kubectl get pod -o yaml`, Event or operator log;
  only what may read Secrets in the task namespace sees them. Created or replaced before the Pod (a stale
  one from a crashed operator never reaches a new Pod), deleted with the Pod.
- **Owner**: the Task resource (`ownerReferences` with its uid, `controller: true`). Deleting a Task
  deletes its Pods, Secrets and NetworkPolicies through Kubernetes' garbage collector; the runtime also
  deletes them itself when an attempt is removed. Without a Task (a runtime used directly) nothing owns
  them and the runtime's own deletes are all there is; so it is for a Task outside the Pods' namespace
  (`containers.pods_namespace`): an owner must live in its dependents' namespace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import API_VERSION

LABEL_POD = "sprintorchestrator.dev/pod"


def owner_reference(task: Mapping[str, Any] | None, namespace: str) -> list[dict[str, Any]]:
    """The ownerReferences that make a Task own an object in `namespace`; [] without a Task (or its
    uid), and [] for a Task in another namespace: Kubernetes treats a cross-namespace owner as absent
    and would garbage-collect the object at once."""
    meta = (task or {}).get("metadata") or {}
    if not meta.get("uid") or not meta.get("name") or meta.get("namespace") != namespace:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Task",
            "name": str(meta["name"]),
            "uid": str(meta["uid"]),
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]


def sprint_owner(owner: Mapping[str, Any] | None, namespace: str) -> list[dict[str, Any]]:
    """The ownerReferences that make a Task's Sprint own a warm Pod in `namespace` ([] across namespaces:
    Kubernetes would collect it at once)."""
    meta = (owner or {}).get("metadata") or {}
    if meta.get("namespace") != namespace:
        return []
    refs = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Sprint" and r.get("uid")]
    return [
        {"apiVersion": API_VERSION, "kind": "Sprint", "name": str(r["name"]), "uid": str(r["uid"]),
         "controller": False, "blockOwnerDeletion": False}
        for r in refs[:1]
    ]  # fmt: skip


Owners = list[dict[str, Any]]


def _meta(name: str, namespace: str, labels: Mapping[str, str], owners: Owners) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owners:
        meta["ownerReferences"] = owners
    return meta


OPERATOR_POD_LABELS = {  # the chart's and the kustomize base's operator Pods
    "app.kubernetes.io/name": "sprint-orchestrator",
    "app.kubernetes.io/component": "operator",
}
KUBE_SYSTEM = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}


def operator_peer(operator_ip: str, operator_namespace: str | None) -> dict[str, Any]:
    """Where the operator is, as a NetworkPolicy peer. Outside the cluster: its address (/32). In a Pod
    (it listens on every address, behind a Service): its Pods by label in its namespace, because
    NetworkPolicy is checked after the Service's address is translated to the Pod's."""
    if operator_ip not in ("", "0.0.0.0", "::") or not operator_namespace:
        return {"ipBlock": {"cidr": f"{operator_ip}/32"}}
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": operator_namespace}},
        "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)},
    }


def network_policy(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    operator_ip: str,
    ports: Sequence[int],
    owners: list[dict[str, Any]],
    operator_namespace: str | None = None,
    dns: bool = False,
    extra: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """Deny all ingress; allow egress to the operator (`operator_peer`) on `ports` (TCP) only, to the
    cluster's DNS (kube-system, port 53) when the operator's address is a name (`dns`), and to each
    (address, port) of `extra` (a build Pod's package sources: podbuild.py)."""
    egress: list[dict[str, Any]] = [
        {
            "to": [operator_peer(operator_ip, operator_namespace)],
            "ports": [{"protocol": "TCP", "port": int(p)} for p in sorted(set(ports))],
        }
    ]
    for address, port in extra:
        peer = {"ipBlock": {"cidr": f"{address}/32"}}
        egress.append({"to": [peer], "ports": [{"protocol": "TCP", "port": port}]})
    if dns:
        ports_53 = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
        egress.append({"to": [KUBE_SYSTEM], "ports": ports_53})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace, labels, owners),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_POD: name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def secret(
    name: str, namespace: str, labels: Mapping[str, str], values: Mapping[str, str], owners: Owners
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(name, namespace, labels, owners),
        "stringData": dict(values),
    }


def secret_env(name: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Env entries reading each key of Secret `name` (variable name = key)."""
    return [{"name": k, "valueFrom": {"secretKeyRef": {"name": name, "key": k}}} for k in sorted(keys)]
