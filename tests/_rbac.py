"""Least-privilege checks from the kube-apiserver's audit log.

`AuditedCluster` is the local control plane with an audit policy that records, at Metadata level,
every request of ServiceAccounts. `violations` and `unused_rules` compare the calls with RBAC rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import kubectl
from localcluster import LocalCluster

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


class AuditedCluster(LocalCluster):
    """The local control plane, with the apiserver writing an audit log to `audit_log`."""

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit" / "audit.log"

    def _apiserver_args(self, pki: Path, etcd_port: int, api_port: int) -> list[str]:  # type: ignore[override]
        policy = self.state_dir / "audit" / "policy.yaml"
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(AUDIT_POLICY)
        return [
            *LocalCluster._apiserver_args(pki, etcd_port, api_port),
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking",
            "--audit-log-format=json",
        ]


@dataclass(frozen=True, order=True)
class Call:
    api_group: str
    resource: str  # "tasks" or "tasks/status"
    verb: str
    code: int


def audited_calls(log: Path, username: str) -> list[Call]:
    """Resource requests by `username` (non-resource URLs such as discovery are left out)."""
    calls = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef")
        if (
            event.get("user", {}).get("username") != username
            or not ref
            or event.get("stage") != "ResponseComplete"
        ):
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        calls.append(Call(ref.get("apiGroup", ""), resource, event["verb"], event["responseStatus"]["code"]))
    return calls


def unfinished_requests(log: Path, username: str) -> set[str]:
    """Audit IDs of `username`'s long-running requests (watches) logged as started but not yet as
    complete: the apiserver logs a watch's ResponseComplete only once it sees the client gone."""
    started: set[str] = set()
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") != username:
            continue
        if event.get("stage") == "ResponseStarted":
            started.add(event["auditID"])
        elif event.get("stage") in ("ResponseComplete", "Panic"):
            started.discard(event["auditID"])
    return started


def _allows(rule: dict[str, Any], call: Call) -> bool:
    return (
        call.api_group in rule.get("apiGroups", [])
        and call.resource in rule.get("resources", [])
        and (call.verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
    )


def violations(calls: list[Call], rules: list[dict[str, Any]]) -> list[Call]:
    """Calls that no rule allows, or that the apiserver refused (403)."""
    return sorted({c for c in calls if c.code == 403 or not any(_allows(r, c) for r in rules)})


def unused_rules(calls: list[Call], rules: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(apiGroup, resource, verb) granted by the rules but never called."""
    used = {(c.api_group, c.resource, c.verb) for c in calls}
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    return sorted(granted - used)


def sa_kubeconfig(cluster: LocalCluster, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a token from the TokenRequest API."""
    token = kubectl(cluster, "create", "token", name, "-n", namespace, "--duration=2h").strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = name
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path
