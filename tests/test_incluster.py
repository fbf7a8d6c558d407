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
def git_root(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`git daemon` (pushes allowed) on the host's node-bridge address, which the operator's Pod reaches,
    serving the bare repositories under a directory; yields it and its git:// URL."""
    node_set = nodes.node_set()
    assert node_set is not None
    root = tmp_path_factory.mktemp("remote")
    host = node_set.slot.host_ip
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--listen={host}", f"--port={GIT_PORT}", "--export-all",
         "--enable=receive-pack", f"--base-path={root}", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield root, f"git://{host}:{GIT_PORT}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sample_repository(git_root: tuple[Path, str], name: str) -> tuple[Path, str]:
    """A fresh bare copy of the sample repository (hack/example-repo.sh), once git daemon serves it."""
    root, base = git_root
    bare, url = root / f"{name}.git", f"{base}/{name}.git"
    subprocess.run(
        ["bash", str(REPO / "hack" / "example-repo.sh"), str(bare)], check=True, capture_output=True
    )
    wait_for(
        lambda: subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0,
        timeout=60,
        what="git daemon to serve",
    )
    return bare, url


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
    nodes: LocalCluster, git_root: tuple[Path, str], tmp_path: Path
) -> None:
    bare, url = sample_repository(git_root, "textstats")
    repository, tag = pushed_operator_image(nodes)
    for ns in (RELEASE_NS, WORK_NS):
        nodes.kubectl("create", "namespace", ns)
    nodes.kubectl("label", "namespace", RELEASE_NS, "pod-security.kubernetes.io/enforce=restricted")
    transfer_ip, diffs_ip = static_service_ip(nodes), static_service_ip(nodes, 11)
    values = {
        "image": {"repository": repository, "tag": tag},
        "persistence": {"enabled": False},  # the local cluster has no volume provisioner
        "tasks": {
            "registryPlainHTTP": True,
            "transfer": {"address": transfer_ip, "service": {"clusterIP": transfer_ip}},  # no cluster DNS
        },
        "config": {"git": {"repository_url": url}, "orchestrator": {"default_task_timeout": "900s"}},
        "networkPolicy": {"extraEgressPorts": [{"port": int(nodes.registry.rsplit(":", 1)[1])}]},
        # the operator's diff Service at a static ClusterIP too: the dashboard finds it without DNS
        "dashboard": {"namespace": WORK_NS, "diffs": {"service": {"clusterIP": diffs_ip}}},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    helm(nodes, "install", "so", str(CHART), "-n", RELEASE_NS, "-f", str(tmp_path / "values.yaml"))
    try:
        run_demo_sprint(nodes, RELEASE_NS, "so-sprint-orchestrator", WORK_NS, repository, bare, tmp_path)
        diff = dashboard_get(nodes, RELEASE_NS, "/api/tasks/textstats-1:words/diff")
        assert diff["status"] == 200, diff
        body = json.loads(diff["body"])
        assert body["phase"] == "Completed" and "textstats/words.py" in [f["path"] for f in body["files"]]
        text = dashboard_get(nodes, RELEASE_NS, "/api/tasks/textstats-1:words/diff", "text/x-diff")
        assert text["status"] == 200 and "diff --git a/textstats/words.py" in text["body"], text
    finally:
        helm(nodes, "uninstall", "so", "-n", RELEASE_NS, "--wait", "--timeout=300s")


def test_the_kustomize_base_installed_in_the_cluster_runs_the_demo_sprint_the_same_way(
    nodes: LocalCluster, git_root: tuple[Path, str], tmp_path: Path
) -> None:
    """`kubectl apply -k` of an overlay on manifests/ that sets only what a real cluster must (the image,
    the registry, the repository) and what this one lacks (a volume provisioner, DNS)."""
    bare, url = sample_repository(git_root, "textstats-k")
    repository, tag = pushed_operator_image(nodes)
    transfer_ip = static_service_ip(nodes)
    ns, work = "sprint-orchestrator", "work-k"
    config = {
        "orchestrator": {"allowed_host_paths": ["/opt/sprint-orchestrator/examples"]},
        "git": {"repository_url": url, "working_trees_path": "/var/lib/sprint-orchestrator/trees"},
        "containers": {
            "runtime": "pods", "registry": nodes.registry, "registry_plain_http": True,
            "base_image": f"{repository}:{tag}", "pods_namespace": ns,
            "transfer_address": f"{transfer_ip}:8081", "transfer_listen": "0.0.0.0:8081",
        },
    }  # fmt: skip
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    patches = [
        ("Deployment", "sprint-orchestrator", [
            {"op": "replace", "path": "/spec/template/spec/volumes/0", "value": {"name": "state", "emptyDir": {}}}  # noqa: E501
        ]),
        ("Service", "sprint-orchestrator-transfer", [
            {"op": "add", "path": "/spec/clusterIP", "value": transfer_ip}
        ]),
        ("NetworkPolicy", "sprint-orchestrator", [{
            "op": "add", "path": "/spec/egress/0/ports/-",
            "value": {"protocol": "TCP", "port": int(nodes.registry.rsplit(":", 1)[1])},
        }]),
        ("ConfigMap", "sprint-orchestrator-config", [
            {"op": "replace", "path": "/data/config.yaml", "value": yaml.safe_dump(config)}
        ]),
    ]  # fmt: skip
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(REPO / "manifests", overlay)],
        "images": [{"name": "localhost/sprint-orchestrator/operator", "newName": repository, "newTag": tag}],
        "patches": [
            {"target": {"kind": kind, "name": name}, "patch": yaml.safe_dump(ops)}
            for kind, name, ops in patches
        ],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    nodes.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(overlay))
    nodes.kubectl("create", "namespace", work)
    labels = kubectl_json(nodes, "get", "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"  # from manifests/, not the test
    run_demo_sprint(nodes, ns, "sprint-orchestrator", work, repository, bare, tmp_path)


def pushed_operator_image(nodes: LocalCluster) -> tuple[str, str]:
    """The operator image in the cluster's registry: (repository, tag)."""
    image = push_image(
        operator_image(), nodes.registry, f"sprint-orchestrator/operator:{uuid.uuid4().hex[:8]}"
    )
    repository, tag = str(image).rsplit(":", 1)
    return repository, tag


def static_service_ip(nodes: LocalCluster, host: int = 10) -> str:
    """An address in the Service CIDR's static band (never handed out dynamically): the transfer Service's
    ClusterIP, since Pods here have no cluster DNS to find its name."""
    node_set = nodes.node_set()
    assert node_set is not None
    return node_set.slot.service_cidr.rsplit(".", 1)[0] + f".{host}"


def dashboard_get(
    nodes: LocalCluster, ns: str, path: str, accept: str = "application/json"
) -> dict[str, Any]:
    """GET a path of the dashboard from inside its own Pod (the test host does not reach ClusterIPs):
    {"status", "body"}."""
    script = (
        "import json, sys, urllib.error, urllib.request\n"
        "url, accept = 'http://127.0.0.1:8080' + sys.argv[1], sys.argv[2]\n"
        "request = urllib.request.Request(url, headers={'Accept': accept})\n"
        "try:\n"
        "    answer = urllib.request.urlopen(request, timeout=120)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    answer = exc\n"
        "print(json.dumps({'status': answer.status, 'body': answer.read().decode()}))\n"
    )
    pod = "deployment/so-sprint-orchestrator-dashboard"
    out = nodes.kubectl("-n", ns, "exec", pod, "--", "python3", "-c", script, path, accept)
    return dict(json.loads(out))


def run_demo_sprint(
    nodes: LocalCluster, ns: str, deployment: str, work: str, repository: str, bare: Path, tmp_path: Path
) -> None:
    """examples/sprint.yaml to Completed with the operator in `ns`: task Pods on both nodes, nothing
    privileged in any Pod, the merged work on the remote's main, a clean operator log."""
    for name in (deployment, f"{deployment}-dashboard"):
        nodes.kubectl("-n", ns, "rollout", "status", f"deployment/{name}", "--timeout=600s")
    sprint = yaml.safe_load((REPO / "examples" / "sprint.yaml").read_text())
    nodes.kubectl("-n", work, "apply", "-f", "-", input=yaml.safe_dump(sprint))
    pods = PodWatch(nodes)

    def ended() -> dict[str, Any] | None:
        pods.poll()
        status = kubectl_json(nodes, "-n", work, "get", "sprint", "textstats-1").get("status") or {}
        return status if status.get("phase") in ("Completed", "Partial", "Failed") else None

    log = tmp_path / "operator.log"
    try:
        status = wait_for(ended, 1800, "the demo sprint ended")
    finally:
        log.write_text(nodes.kubectl("-n", ns, "logs", f"deployment/{deployment}", "--tail=-1"))
    assert status["phase"] == "Completed", json.dumps(status.get("conditions"), indent=1)
    assert str(status["image"]).startswith(f"{repository}@sha256:"), status["image"]

    # Task and gate Pods ran in the operator's namespace, on both nodes, as the scheduler placed them.
    events = kubectl_json(nodes, "-n", ns, "get", "events")["items"]
    placed = {
        e["involvedObject"]["name"]: e["message"].rsplit(" to ", 1)[-1]
        for e in events
        if e.get("reason") == "Scheduled"
    }
    tasks = kubectl_json(nodes, "-n", work, "get", "stask")["items"]
    names = sorted(t["status"]["containerName"] for t in tasks)
    assert len(names) == 6 and all(name in placed for name in names), (names, placed)
    assert {placed[name] for name in names} == {"node1", "node2"}, placed

    # Nothing of the node in any Pod; the operator's namespace enforces restricted.
    assert pods.task_pods(), "no task Pod was seen running"
    assert [p for pod in pods.seen.values() for p in privileged_parts(pod)] == []
    for pod in pods.task_pods():
        assert pod["spec"]["automountServiceAccountToken"] is False
        assert pod["metadata"]["namespace"] == ns
    labels = kubectl_json(nodes, "get", "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    component = "app.kubernetes.io/component"
    operator = [p for p in pods.seen.values() if p["metadata"]["labels"].get(component) == "operator"]
    assert {p["metadata"]["namespace"] for p in operator} == {ns}

    # The work reached the remote's main, pushed by the operator over git://.
    tree = ["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "main"]
    merged = subprocess.run(tree, capture_output=True, text=True, check=True).stdout.split()
    assert {"textstats/words.py", "textstats/cli.py", "docs/usage.md"} <= set(merged)
    assert_clean_log(log)
