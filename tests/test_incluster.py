"""The operator installed IN the cluster (`helm install`, the chart's defaults: containers.runtime pods)
runs the demo sprint with task Pods on two real nodes: its image built with Podman and pushed to the
cluster's registry, the target repository served by `git daemon` on the host's node-bridge address,
the operator's namespace enforcing the restricted Pod Security level, no Pod with a hostPath or
anything privileged."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from _e2e import wait_for
from _node import two_nodes
from _oplog import assert_clean_log
from localcluster import BIN, LocalCluster
from nodeset import push_image

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "sprint-orchestrator"
RELEASE_NS = "so-system"
WORK_NS = "work"
GIT_PORT = 9418
# The inputs of the operator image: its tag is their hash, so it is built once per content.
IMAGE_INPUTS = ("Containerfile", ".containerignore", "pyproject.toml", "operator", "examples/demo-team")


def image_key() -> str:
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        root = REPO / name
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts or "kaiban-app" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def operator_image() -> str:
    """hack/operator-image.sh's image of this checkout, built once per content (tag = content hash)."""
    tag = f"localhost/sprint-orchestrator/operator:ic-{image_key()}"
    env = dict(os.environ, CONTAINERS_CONF=str(REPO / "hack" / "containers.conf"), OPERATOR_IMAGE=tag)
    if subprocess.run(["podman", "image", "exists", tag], env=env, check=False).returncode != 0:
        built = subprocess.run(
            ["bash", str(REPO / "hack" / "operator-image.sh")],
            capture_output=True, text=True, timeout=1800, env=env, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr[-4000:]
    return tag


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("incluster")) as local:
        yield local


@pytest.fixture(scope="module")
def git_remote(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The sample repository served by `git daemon` (pushes allowed) on the host's node-bridge address,
    which the operator's Pod reaches."""
    node_set = nodes.node_set()
    assert node_set is not None
    root = tmp_path_factory.mktemp("remote")
    bare = root / "textstats.git"
    seed = ["bash", str(REPO / "hack" / "example-repo.sh"), str(bare)]
    subprocess.run(seed, check=True, capture_output=True)
    host = node_set.slot.host_ip
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--listen={host}", f"--port={GIT_PORT}", "--export-all",
         "--enable=receive-pack", f"--base-path={root}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"git://{host}:{GIT_PORT}/textstats.git"
    try:
        wait_for(
            lambda: subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0,
            timeout=60,
            what="git daemon to serve",
        )
        yield bare, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def kubectl_json(nodes: LocalCluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(nodes.kubectl(*args, "-o", "json")))


def helm(nodes: LocalCluster, *args: str) -> str:
    env = dict(os.environ, KUBECONFIG=str(nodes.kubeconfig), HELM_CACHE_HOME="/tmp/helm-cache-ic")
    result = subprocess.run(
        [str(BIN / "helm"), *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class PodWatch:
    """Every Pod seen in any namespace while the sprint runs (task Pods are deleted once they end)."""

    def __init__(self, nodes: LocalCluster) -> None:
        self.nodes = nodes
        self.seen: dict[str, dict[str, Any]] = {}

    def poll(self) -> None:
        for pod in kubectl_json(self.nodes, "get", "pods", "-A")["items"]:
            self.seen.setdefault(pod["metadata"]["uid"], pod)

    def task_pods(self) -> list[dict[str, Any]]:
        role = "sprintorchestrator.dev/role"
        return [p for p in self.seen.values() if p["metadata"].get("labels", {}).get(role)]


def privileged_parts(pod: dict[str, Any]) -> list[str]:
    """What in a Pod spec reaches past the restricted level: hostPath, host namespaces, privilege."""
    spec = pod["spec"]
    name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    found = [f"{name}: hostPath {v['name']}" for v in spec.get("volumes") or [] if "hostPath" in v]
    found += [f"{name}: {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        security = container.get("securityContext") or {}
        if security.get("privileged") or security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}/{container['name']}: privileged or may escalate")
        if (security.get("capabilities") or {}).get("add"):
            found.append(f"{name}/{container['name']}: adds capabilities")
    return found


def test_the_chart_installed_in_the_cluster_runs_the_demo_sprint_with_task_pods_on_both_nodes(
    nodes: LocalCluster, git_remote: tuple[Path, str], tmp_path: Path
) -> None:
    node_set = nodes.node_set()
    assert node_set is not None
    bare, url = git_remote
    name = f"sprint-orchestrator/operator:{uuid.uuid4().hex[:8]}"
    image = push_image(operator_image(), nodes.registry, name)
    repository, tag = str(image).rsplit(":", 1)
    transfer_ip = node_set.slot.service_cidr.rsplit(".", 1)[0] + ".10"  # the Service CIDR's static band
    for ns in (RELEASE_NS, WORK_NS):
        nodes.kubectl("create", "namespace", ns)
    nodes.kubectl("label", "namespace", RELEASE_NS, "pod-security.kubernetes.io/enforce=restricted")
    values = {
        "image": {"repository": repository, "tag": tag},
        "persistence": {"enabled": False},  # the local cluster has no volume provisioner
        "tasks": {
            "registryPlainHTTP": True,
            "transfer": {"address": transfer_ip, "service": {"clusterIP": transfer_ip}},  # no cluster DNS
        },
        "config": {"git": {"repository_url": url}, "orchestrator": {"default_task_timeout": "900s"}},
        "networkPolicy": {"extraEgressPorts": [{"port": int(nodes.registry.rsplit(":", 1)[1])}]},
        "dashboard": {"namespace": WORK_NS},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    helm(nodes, "install", "so", str(CHART), "-n", RELEASE_NS, "-f", str(tmp_path / "values.yaml"))
    deployment = "deployment/so-sprint-orchestrator"
    nodes.kubectl("-n", RELEASE_NS, "rollout", "status", deployment, "--timeout=600s")

    sprint = yaml.safe_load((REPO / "examples" / "sprint.yaml").read_text())
    nodes.kubectl("-n", WORK_NS, "apply", "-f", "-", input=yaml.safe_dump(sprint))
    pods = PodWatch(nodes)

    def ended() -> dict[str, Any] | None:
        pods.poll()
        status = kubectl_json(nodes, "-n", WORK_NS, "get", "sprint", "textstats-1").get("status") or {}
        return status if status.get("phase") in ("Completed", "Partial", "Failed") else None

    try:
        status = wait_for(ended, 1800, "the demo sprint ended")
    finally:
        log = tmp_path / "operator.log"
        log.write_text(nodes.kubectl("-n", RELEASE_NS, "logs", deployment, "--tail=-1"))
    assert status["phase"] == "Completed", json.dumps(status.get("conditions"), indent=1)
    assert str(status["image"]).startswith(f"{repository}@sha256:"), status["image"]

    # Task and gate Pods ran in the operator's namespace, on both nodes, as the scheduler placed them.
    events = kubectl_json(nodes, "-n", RELEASE_NS, "get", "events")["items"]
    placed = {
        e["involvedObject"]["name"]: e["message"].rsplit(" to ", 1)[-1]
        for e in events
        if e.get("reason") == "Scheduled"
    }
    tasks = kubectl_json(nodes, "-n", WORK_NS, "get", "stask")["items"]
    names = sorted(t["status"]["containerName"] for t in tasks)
    assert len(names) == 6 and all(name in placed for name in names), (names, placed)
    assert {placed[name] for name in names} == {"node1", "node2"}, placed

    # Nothing of the node in any Pod; the operator's namespace enforces restricted.
    assert pods.task_pods(), "no task Pod was seen running"
    assert [p for pod in pods.seen.values() for p in privileged_parts(pod)] == []
    for pod in pods.task_pods():
        assert pod["spec"]["automountServiceAccountToken"] is False
    labels = kubectl_json(nodes, "get", "namespace", RELEASE_NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    component = "app.kubernetes.io/component"
    operator = [p for p in pods.seen.values() if p["metadata"]["labels"].get(component) == "operator"]
    assert [p["metadata"]["namespace"] for p in operator] == [RELEASE_NS]

    # The work reached the remote's main, pushed by the operator over git://.
    tree = ["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "main"]
    merged = subprocess.run(tree, capture_output=True, text=True, check=True).stdout.split()
    assert {"textstats/words.py", "textstats/cli.py", "docs/usage.md"} <= set(merged)
    assert_clean_log(log)
