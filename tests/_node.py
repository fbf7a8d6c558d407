"""Helpers for tests on real nodes: a tiny image built with Podman, Pod manifests, waiting on Pods."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from localcluster import LocalCluster

BUSYBOX = Path("/usr/bin/busybox")


def build_busybox_image() -> str:
    """A FROM-scratch image holding the static busybox and its applets, built with Podman; its tag is
    the busybox binary's digest, so it is built once per machine."""
    digest = hashlib.sha256(BUSYBOX.read_bytes()).hexdigest()[:12]
    ref = f"localhost/sprint-orchestrator/node-test:{digest}"
    exists = subprocess.run(["podman", "image", "exists", ref], check=False)
    if exists.returncode == 0:
        return ref
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        (ctx / "bin").mkdir()
        shutil.copy2(BUSYBOX, ctx / "bin" / "busybox")
        for applet in applets.stdout.split():
            if applet != "busybox" and "/" not in applet:
                os.symlink("busybox", ctx / "bin" / applet)
        (ctx / "Containerfile").write_text(
            'FROM scratch\nCOPY bin /bin\nENV PATH=/bin\nUSER 0\nENTRYPOINT ["/bin/sh", "-c"]\n'
        )
        subprocess.run(
            ["podman", "build", "-q", "-t", ref, "-f", str(ctx / "Containerfile"), str(ctx)],
            check=True,
            capture_output=True,
        )
    return ref


def pod(
    name: str,
    image: str,
    script: str,
    *,
    labels: dict[str, str] | None = None,
    memory: str | None = None,
    deadline: int | None = None,
    security: dict[str, Any] | None = None,
    pod_security: dict[str, Any] | None = None,
    node: str | None = None,
    restart: str = "Never",
    pull: str = "Never",
    service_account_token: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": pull,
        "args": [script],
    }
    if memory:
        container["resources"] = {"limits": {"memory": memory, "cpu": "500m"}}
    if security:
        container["securityContext"] = security
    spec: dict[str, Any] = {
        "restartPolicy": restart,
        "containers": [container],
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": service_account_token,
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if pod_security:
        spec["securityContext"] = pod_security
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


@contextmanager
def two_nodes(state_dir: Path) -> Iterator[LocalCluster]:
    """A local cluster with two real nodes, torn down exactly afterwards (skipped unless root)."""
    if os.geteuid() != 0:
        pytest.skip("real nodes need root (containerd, cgroups, network namespaces)")
    local = LocalCluster(state_dir, nodes=2)
    local.up()
    try:
        yield local
    finally:
        local.down()


def pod_json(kubectl: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("-n", namespace, "get", "pod", name, "-o", "json")))


def terminated(pod_obj: dict[str, Any]) -> dict[str, Any] | None:
    for status in pod_obj.get("status", {}).get("containerStatuses", []):
        state = status.get("state", {}).get("terminated")
        if state:
            return dict(state)
    return None


def install_crds(nodes: LocalCluster) -> None:
    """Apply the CRDs and wait until both are Established."""
    from conftest import CRDS

    nodes.apply_crds(CRDS)


def restricted_namespace(nodes: LocalCluster, prefix: str) -> str:
    """A fresh namespace enforcing the restricted Pod Security level, as task Pods run in."""
    import uuid

    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    nodes.kubectl("create", "namespace", ns)
    nodes.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    return ns


@contextmanager
def pods_runtime(nodes: LocalCluster, state: Path, prefix: str, **options: Any) -> Iterator[Any]:
    """A PodsRuntime on the cluster's nodes, in a fresh restricted namespace, advertising the host's
    node-bridge address; closed at the end."""
    from sprint_orchestrator.kube import Kube
    from sprint_orchestrator.runtime.pods import PodsRuntime

    node_set = nodes.node_set()
    assert node_set is not None
    namespace = restricted_namespace(nodes, prefix)
    kube = Kube.from_kubeconfig(str(nodes.kubeconfig))
    pods = PodsRuntime(kube, namespace, node_set.slot.host_ip, state, registry=nodes.registry, **options)
    try:
        yield pods
    finally:
        pods.close()


def pods_operator(
    nodes: LocalCluster,
    tmp_path: Path,
    prefix: str,
    orchestrator: dict[str, Any] | None = None,
    containers: dict[str, Any] | None = None,
) -> tuple[str, Path]:
    """What every e2e of the operator on the pods runtime needs: the CRDs established, a fresh namespace
    enforcing the restricted Pod Security level, and the operator's configuration file (trees under
    tmp_path, the local registry on plain HTTP, the host's node-bridge address for transfers). Returns
    (namespace, config path)."""
    import yaml

    node_set = nodes.node_set()
    assert node_set is not None
    install_crds(nodes)
    ns = restricted_namespace(nodes, prefix)
    config = {
        "orchestrator": {"allowed_host_paths": [str(tmp_path)], **(orchestrator or {})},
        "git": {"working_trees_path": str(tmp_path / "trees")},
        "containers": {
            "runtime": "pods", "base_image": "localhost/sprint-orchestrator/base:bookworm",
            "registry": nodes.registry, "registry_plain_http": True,
            "transfer_address": node_set.slot.host_ip, "pods_namespace": ns, **(containers or {}),
        },
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return ns, path
