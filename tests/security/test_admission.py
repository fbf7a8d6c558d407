"""Sprint authors who are not cluster admins are refused at `kubectl apply` when they name host paths or
a main branch the admin did not allow: the chart's ValidatingAdmissionPolicy on the real apiserver, as
a namespace editor (impersonated) would meet it. The operator's own check (InvalidSpec) is tested in
test_operator_e2e.py; this is the admission side of the same rule."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from _e2e import suspended_sprint, wait_for
from conftest import REPO, kubectl
from localcluster import LocalCluster

pytestmark = pytest.mark.cluster
CHART = REPO / "helm" / "sprint-orchestrator"
EDITOR = "alice@example.com"
ALLOWED = "/srv/allowed"


def rendered_policy(release: str, namespace: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(REPO / "hack" / "bin" / "helm"), "template", release, str(CHART),
         "--show-only", "templates/admission.yaml",
         "--set", f"admission.allowedHostPaths={{{ALLOWED}}}",
         "--set", "admission.allowedMainBranches={main,trunk}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:  # this test's namespace only: the rest of the suite shares the cluster
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["matchResources"] = {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            }
    return docs


@pytest.fixture
def policy(cluster: LocalCluster, namespace: str) -> Iterator[str]:
    release = f"adm-{uuid.uuid4().hex[:6]}"
    docs = rendered_policy(release, namespace)
    kubectl(cluster, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "sprint-author", "namespace": namespace},
        "rules": [{"apiGroups": ["sprintorchestrator.dev"], "resources": ["sprints"],
                   "verbs": ["get", "list", "create", "update", "patch", "delete"]}],
    }  # fmt: skip
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "sprint-author", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sprint-author"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": EDITOR}],
    }  # fmt: skip
    kubectl(cluster, "apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))
    name = docs[0]["metadata"]["name"]
    try:
        yield name
    finally:
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            kubectl(cluster, "delete", kind, name, "--ignore-not-found", check=False)


def apply_as(cluster: LocalCluster, namespace: str, manifest: dict[str, Any], *who: str) -> tuple[int, str]:
    cmd = [str(REPO / "hack" / "bin" / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *who,
           "apply", "-n", namespace, "-f", "-"]  # fmt: skip
    done = subprocess.run(cmd, input=json.dumps(manifest), capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def sprint(name: str, **spec: Any) -> dict[str, Any]:
    manifest = suspended_sprint(name, tasks=1)
    manifest["spec"].update(spec)
    return manifest


EDITOR_ARGS = ("--as", EDITOR, "--as-group", "system:authenticated")


def wait_until_in_force(cluster: LocalCluster, namespace: str) -> str:
    """A new policy takes a moment to reach the apiserver's admission: apply a refused Sprint as the
    editor until it is refused. One that got through before is deleted first, because applying it again
    would be an update that leaves the host path unchanged, which the policy lets through."""
    escape = sprint("escape", team={"type": "demo", "recipes": "/etc"})

    def refused() -> str | None:
        kubectl(cluster, "delete", "sprint", "escape", "-n", namespace, "--ignore-not-found", "--wait=true")
        code, out = apply_as(cluster, namespace, escape, *EDITOR_ARGS)
        return None if code == 0 else out

    message: str = wait_for(refused, timeout=90, what="the admission policy to refuse /etc")
    return message


def test_a_namespace_editor_cannot_name_host_paths_or_branches_the_admin_did_not_allow(
    cluster: LocalCluster, namespace: str, policy: str
) -> None:
    message = wait_until_in_force(cluster, namespace)
    assert (
        policy in message
        and "spec.team.recipes: /etc is outside the host paths this cluster allows" in message
    )
    cases = {
        "dotdot": ({"team": {"type": "demo", "recipes": f"{ALLOWED}/../../etc"}}, "spec.team.recipes"),
        "repo": ({"repository": {"url": "/root/secret.git", "mainBranch": "main"}}, "spec.repository.url"),
        "fileurl": ({"repository": {"url": "file:///root/secret.git"}}, "spec.repository.url"),
        "branch": (
            {"repository": {"url": "https://git.example.com/app.git", "mainBranch": "release"}},
            "spec.repository.mainBranch: release is not a branch",
        ),
    }
    for name, (spec, field) in cases.items():
        code, out = apply_as(cluster, namespace, sprint(name, **spec), *EDITOR_ARGS)
        assert code != 0 and field in out, (name, out)
    allowed = sprint(
        "fine",
        team={"type": "demo", "recipes": f"{ALLOWED}/recipes"},
        repository={"url": f"{ALLOWED}/app.git", "mainBranch": "trunk"},
    )
    code, out = apply_as(cluster, namespace, allowed, *EDITOR_ARGS)
    assert code == 0, out
    remote = sprint("remote", repository={"url": "https://git.example.com/app.git", "mainBranch": "main"})
    assert apply_as(cluster, namespace, remote, *EDITOR_ARGS)[0] == 0


def test_a_cluster_admin_is_not_stopped_by_the_policy(
    cluster: LocalCluster, namespace: str, policy: str
) -> None:
    wait_until_in_force(cluster, namespace)
    etc = {"type": "demo", "recipes": "/etc"}
    code, out = apply_as(cluster, namespace, sprint("admin", team=etc))
    assert code == 0, out  # the operator still refuses it against its own configuration (InvalidSpec)
    # An editor (or the operator's ServiceAccount) may change other fields; a host path only if allowed.
    edited = sprint("admin", team=etc, displayName="Renamed by an editor")
    code, out = apply_as(cluster, namespace, edited, *EDITOR_ARGS)
    assert code == 0, out
    moved = sprint("admin", team={"type": "demo", "recipes": "/root"})
    code, out = apply_as(cluster, namespace, moved, *EDITOR_ARGS)
    assert code != 0 and "spec.team.recipes: /root is outside" in out
