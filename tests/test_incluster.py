"""The operator installed IN the cluster (`helm install`, the chart's defaults: containers.runtime pods)
runs the demo sprint with task Pods on two real nodes: its image built with Podman and pushed to the
cluster's registry, the target repository served by `git daemon` on the host's node-bridge address,
the operator's namespace enforcing the restricted Pod Security level, no Pod with a hostPath or
anything privileged."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from _e2e import wait_for
from _node import two_nodes
from _oplog import assert_clean_log
from _proxy import REAL_KEY, expected_usage
from _standin_anthropic import AnthropicStandIn
from localcluster import BIN, LocalCluster
from nodeset import push_image
from test_agent_e2e import ThreadedStandIn, agent_image  # noqa: F401 (a fixture)

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
    nodes: LocalCluster,
    git_root: tuple[Path, str],
    tmp_path: Path,
    agent_image: str,  # noqa: F811 (the fixture)
) -> None:
    """The demo sprint, then a task of the REAL Claude Code CLI in a task Pod whose model requests go
    through the operator's metering proxy behind the transfer Service (the Anthropic stand-in upstream,
    reached by the operator's Pod only)."""
    bare, url = sample_repository(git_root, "textstats")
    repository, tag = pushed_operator_image(nodes)
    node_set = nodes.node_set()
    assert node_set is not None
    for ns in (RELEASE_NS, WORK_NS):
        nodes.kubectl("create", "namespace", ns)
    nodes.kubectl("label", "namespace", RELEASE_NS, "pod-security.kubernetes.io/enforce=restricted")
    nodes.kubectl("-n", RELEASE_NS, "create", "secret", "generic", "sprint-orchestrator-llm",
                  f"--from-literal=ANTHROPIC_API_KEY={REAL_KEY}")  # fmt: skip
    transfer_ip, diffs_ip = static_service_ip(nodes), static_service_ip(nodes, 11)
    with ThreadedStandIn(AnthropicStandIn(host=node_set.slot.host_ip)) as standin:
        egress = [
            {"port": int(nodes.registry.rsplit(":", 1)[1])},
            {"port": int(standin.url.rsplit(":", 1)[1])},
        ]
        values = {
            "image": {"repository": repository, "tag": tag},
            "persistence": {"enabled": False},  # the local cluster has no volume provisioner
            "tasks": {
                "registryPlainHTTP": True,
                "transfer": {"address": transfer_ip, "service": {"clusterIP": transfer_ip}},  # no cluster DNS
            },
            "config": {"git": {"repository_url": url}, "orchestrator": {"default_task_timeout": "900s"}},
            "networkPolicy": {"extraEgressPorts": egress},
            # the operator's diff Service at a static ClusterIP too: the dashboard finds it without DNS
            "dashboard": {"namespace": WORK_NS, "diffs": {"service": {"clusterIP": diffs_ip}}},
            "operator": {"env": {"SPRINT_ORCHESTRATOR_ANTHROPIC_URL": standin.url}},
        }
        (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
        helm(nodes, "install", "so", str(CHART), "-n", RELEASE_NS, "-f", str(tmp_path / "values.yaml"))
        try:
            run_demo_sprint(nodes, RELEASE_NS, "so-sprint-orchestrator", WORK_NS, repository, bare, tmp_path)
            with port_forward(nodes, RELEASE_NS, "service/so-sprint-orchestrator-dashboard", 80) as board:
                # what a user does first: the board through its Service, from their machine
                with urllib.request.urlopen(f"{board}/api/dashboard/textstats-1", timeout=60) as answer:
                    shown = json.loads(answer.read())
                assert shown["board_id"] == "sprint-textstats-1" and len(shown["cards"]) == 6, shown
                with urllib.request.urlopen(f"{board}/board/textstats-1", timeout=60) as answer:
                    assert answer.status == 200 and b"<html" in answer.read().lower()
            diff = dashboard_get(nodes, RELEASE_NS, "/api/tasks/textstats-1:words/diff")
            assert diff["status"] == 200, diff
            body = json.loads(diff["body"])
            assert body["phase"] == "Completed" and "textstats/words.py" in [f["path"] for f in body["files"]]
            text = dashboard_get(nodes, RELEASE_NS, "/api/tasks/textstats-1:words/diff", "text/x-diff")
            assert text["status"] == 200 and "diff --git a/textstats/words.py" in text["body"], text
            run_agent_sprint(
                nodes, "so-sprint-orchestrator", git_root, agent_image, standin, transfer_ip, tmp_path
            )
        finally:
            helm(nodes, "uninstall", "so", "-n", RELEASE_NS, "--wait", "--timeout=300s")
            # `helm uninstall --wait` waits for the Deployment, not its Pods: the namespace goes, with
            # every Pod in it, before the next test watches the cluster's Pods
            nodes.kubectl("delete", "namespace", RELEASE_NS, "--wait", "--timeout=110s")


def run_agent_sprint(
    nodes: LocalCluster,
    deployment: str,
    git_root: tuple[Path, str],
    image: str,
    standin: Any,
    transfer_ip: str,
    tmp_path: Path,
) -> None:
    """test_agent_e2e's Claude Code sprint in the cluster: the task Pod's CLI reaches the proxy on the
    Service's proxy port with its attempt's credential (from a Secret), the real key stays in the
    operator's Pod, the Task's tokens are exactly what the stand-in served."""
    from test_agent_e2e import SPRINT, agent_sprint

    pushed = push_image(image, nodes.registry, f"sprint-orchestrator/agent:{uuid.uuid4().hex[:8]}")
    bare, url = sample_repository(git_root, "agent")
    sprint = agent_sprint(bare, str(pushed))
    sprint["spec"]["repository"] = {"url": url, "mainBranch": "main"}
    nodes.kubectl("-n", WORK_NS, "apply", "-f", "-", input=yaml.safe_dump(sprint))
    pods = PodWatch(nodes)

    log = tmp_path / "operator-agent.log"
    status = wait_ended(nodes, (RELEASE_NS, deployment), (WORK_NS, SPRINT), log, pods)
    found = kubectl_json(
        nodes, "-n", WORK_NS, "get", "stask", "-l", f"sprintorchestrator.dev/sprint={SPRINT}"
    )
    [task] = [t.get("status") or {} for t in found["items"]]
    assert status["phase"] == "Completed", (status.get("message"), task.get("reason"), task.get("error"))
    shown = ["git", "-C", str(bare), "show", "main:OUTPUT.md"]
    assert subprocess.run(shown, capture_output=True, text=True, check=True).stdout.startswith("done: ")

    served = list(standin.served)
    expected = expected_usage(served)
    tokens = task["tokens"]
    assert len(served) >= 3 and (tokens["source"], tokens["partial"]) == ("proxy", False)
    assert tokens["actual"] == expected.total_tokens and tokens["input"] == expected.input_tokens
    assert standin.seen_keys and set(standin.seen_keys) == {REAL_KEY}

    [agent] = [p for p in pods.task_pods() if p["metadata"]["name"] == task["containerName"]]
    env = {e["name"]: e for e in agent["spec"]["containers"][0]["env"]}
    assert env["ANTHROPIC_BASE_URL"]["value"] == f"http://{transfer_ip}:8082/anthropic"  # via the Service
    assert "secretKeyRef" in env["ANTHROPIC_API_KEY"]["valueFrom"]
    texts = [json.dumps(list(pods.seen.values())), log.read_text()]
    texts += [nodes.kubectl("-n", ns, "get", "events", "-o", "yaml") for ns in (RELEASE_NS, WORK_NS)]
    assert not [t for t in texts if REAL_KEY in t]
    assert_clean_log(log)


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
    run_trouble_sprint(nodes, ns, "sprint-orchestrator", work, git_root, tmp_path)


def run_trouble_sprint(
    nodes: LocalCluster, ns: str, deployment: str, work: str, git_root: tuple[Path, str], tmp_path: Path
) -> None:
    """examples/sprint-trouble.yaml on its own repository, in the cluster: the two tasks that set the
    same line conflict (the second to merge is isolated with its path), the task whose test fails waits
    in review until approved, then fails integration; the sprint ends Partial with the rest merged."""
    from _e2e import SPRINTCTL

    bare, url = sample_repository(git_root, "textstats-t")
    sprint = yaml.safe_load((REPO / "examples" / "sprint-trouble.yaml").read_text())
    sprint["spec"]["repository"] = {"url": url, "mainBranch": "main"}
    # An environment to bake in: the operator in its restricted Pod assembles the image in the registry.
    sprint["spec"]["container"]["environment"] = {"TROUBLE_MARK": "baked-in-cluster"}
    nodes.kubectl("-n", work, "apply", "-f", "-", input=yaml.safe_dump(sprint))

    def tasks() -> dict[str, dict[str, Any]]:
        found = kubectl_json(
            nodes, "-n", work, "get", "stask", "-l", "sprintorchestrator.dev/sprint=textstats-trouble"
        )
        return {t["spec"]["taskId"]: t.get("status") or {} for t in found["items"]}

    def settled() -> dict[str, dict[str, Any]] | None:
        seen = tasks()
        phases = {k: v.get("phase") for k, v in seen.items()}
        versions = sorted([phases.get("version-a") or "", phases.get("version-b") or ""])
        done = phases.get("buggy") == "Review" and phases.get("words") == "Completed"
        return seen if done and versions == ["Completed", "Failed"] else None

    seen = wait_for(settled, 1200, "a conflict isolated and a failed gate in review")
    loser = "version-a" if seen["version-a"]["phase"] == "Failed" else "version-b"
    assert (seen[loser]["reason"], seen[loser]["conflicts"]) == ("Conflict", ["textstats/__init__.py"])
    assert not seen["buggy"]["gates"][0]["passed"]
    env = dict(os.environ, KUBECONFIG=str(nodes.kubeconfig))
    approve = [SPRINTCTL, "approve", "textstats-trouble", "buggy", "-n", work]
    subprocess.run(approve, env=env, check=True, capture_output=True, timeout=120)

    log = tmp_path / "operator-trouble.log"
    status = wait_ended(nodes, (ns, deployment), (work, "textstats-trouble"), log, timeout=900)
    assert status["phase"] == "Partial", json.dumps(status.get("conditions"), indent=1)
    assert str(status["image"]).startswith(f"{nodes.registry}/sprint-orchestrator/sprint@sha256:"), status
    assert (tasks()["buggy"]["phase"], tasks()["buggy"]["reason"]) == ("Failed", "IntegrationFailure")
    tree = ["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "main"]
    merged = subprocess.run(tree, capture_output=True, text=True, check=True).stdout.split()
    assert "textstats/words.py" in merged and "textstats/buggy.py" not in merged
    winner = {"version-a": "version-b", "version-b": "version-a"}[loser]
    shown = ["git", "-C", str(bare), "show", "main:textstats/__init__.py"]
    version = subprocess.run(shown, capture_output=True, text=True, check=True).stdout
    assert {"version-a": "0.2.0", "version-b": "1.0.0"}[winner] in version
    assert_clean_log(log)


def pushed_operator_image(nodes: LocalCluster) -> tuple[str, str]:
    """The operator image in the cluster's registry: (repository, tag). The tag starts with a letter: a
    bare hex one such as 1234e567 is a number to YAML 1.2 (kustomize refused it as `newTag`)."""
    image = push_image(
        operator_image(), nodes.registry, f"sprint-orchestrator/operator:t{uuid.uuid4().hex[:8]}"
    )
    repository, tag = str(image).rsplit(":", 1)
    return repository, tag


def static_service_ip(nodes: LocalCluster, host: int = 10) -> str:
    """An address in the Service CIDR's static band (never handed out dynamically): the transfer Service's
    ClusterIP, since Pods here have no cluster DNS to find its name."""
    node_set = nodes.node_set()
    assert node_set is not None
    return node_set.slot.service_cidr.rsplit(".", 1)[0] + f".{host}"


@contextlib.contextmanager
def port_forward(nodes: LocalCluster, ns: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward TARGET :PORT` (through the API server and the kubelet, as a user opens the
    board); the local base URL while it runs."""
    argv = [
        str(BIN / "kubectl"),
        "--kubeconfig",
        str(nodes.kubeconfig),
        "-n",
        ns,
        "port-forward",
        target,
        f":{port}",
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as forward:
        try:
            assert forward.stdout is not None and forward.stderr is not None
            first = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> TARGETPORT"
            found = re.search(r"127\.0\.0\.1:(\d+)", first)
            if found is None:
                forward.kill()
                pytest.fail(f"kubectl port-forward {target}: {first!r} {forward.stderr.read()}")
            yield f"http://127.0.0.1:{found.group(1)}"
        finally:
            forward.terminate()
            forward.wait(timeout=30)


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


def wait_ended(
    nodes: LocalCluster,
    operator: tuple[str, str],
    sprint: tuple[str, str],
    log: Path,
    pods: PodWatch | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """The status of the Sprint (namespace, name) once it reached a terminal phase, polling `pods`
    meanwhile; the operator Deployment's (namespace, name) log is written to `log` whatever happens."""

    def ended() -> dict[str, Any] | None:
        if pods is not None:
            pods.poll()
        status = kubectl_json(nodes, "-n", sprint[0], "get", "sprint", sprint[1]).get("status") or {}
        return status if status.get("phase") in ("Completed", "Partial", "Failed") else None

    try:
        return dict(wait_for(ended, timeout, f"sprint {sprint[1]} ended"))
    finally:
        log.write_text(nodes.kubectl("-n", operator[0], "logs", f"deployment/{operator[1]}", "--tail=-1"))


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

    log = tmp_path / "operator.log"
    status = wait_ended(nodes, (ns, deployment), (work, "textstats-1"), log, pods)
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
