"""Real nodes from hack/: containerd + kubelet + kube-network-policies per node, kube-scheduler and a
registry, joined to the local control plane (`hack/cluster up --nodes 2`)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e import wait_for
from _node import build_busybox_image, pod, pod_json, terminated, two_nodes
from localcluster import BIN, LocalCluster
from nodeset import podman_archive, push_image

pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Two real nodes, brought up once for this module and torn down exactly afterwards."""
    with two_nodes(tmp_path_factory.mktemp("nodes")) as local:
        yield local


@pytest.fixture(scope="module")
def image(nodes: LocalCluster) -> str:
    """A locally built image, imported into every node's containerd (no registry involved)."""
    ref = build_busybox_image()
    archive = podman_archive(ref)
    node_set = nodes.node_set()
    assert node_set is not None
    for node in node_set.nodes:
        node.import_image(archive)
    return ref


@pytest.fixture
def ns(nodes: LocalCluster) -> Iterator[str]:
    name = f"n-{uuid.uuid4().hex[:8]}"
    nodes.kubectl("create", "namespace", name)
    wait_for(lambda: _has_default_sa(nodes, name), 30, "default ServiceAccount")
    yield name
    nodes.kubectl("delete", "namespace", name, "--wait=false")


def _has_default_sa(nodes: LocalCluster, ns: str) -> bool:
    out = nodes.kubectl("-n", ns, "get", "serviceaccounts", "-o", "name")
    return "serviceaccount/default" in out


def apply(nodes: LocalCluster, ns: str, obj: dict[str, Any]) -> None:
    nodes.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj))


def finished(nodes: LocalCluster, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = pod_json(nodes.kubectl, ns, name)
        return obj if obj["status"].get("phase") in ("Succeeded", "Failed") else None

    result: dict[str, Any] = wait_for(done, timeout, f"pod {name} finished")
    return result


def running(nodes: LocalCluster, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def up() -> dict[str, Any] | None:
        obj = pod_json(nodes.kubectl, ns, name)
        phase = obj["status"].get("phase")
        assert phase not in ("Succeeded", "Failed"), obj["status"]
        return obj if phase == "Running" and obj["status"].get("podIP") else None

    result: dict[str, Any] = wait_for(up, timeout, f"pod {name} running")
    return result


def test_both_nodes_are_ready_with_their_own_address(nodes: LocalCluster) -> None:
    items = json.loads(nodes.kubectl("get", "nodes", "-o", "json"))["items"]
    by_name = {item["metadata"]["name"]: item for item in items}
    assert sorted(by_name) == ["node1", "node2"]
    addresses = set()
    for item in by_name.values():
        ready = {c["type"]: c["status"] for c in item["status"]["conditions"]}["Ready"]
        assert ready == "True"
        internal = [a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP"]
        addresses.update(internal)
        assert item["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert len(addresses) == 2


def test_a_pod_with_a_locally_built_image_runs_to_completion_with_its_exit_code_and_logs(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    apply(nodes, ns, pod("hello", image, "echo hello from $(hostname); echo to-stderr >&2; exit 3"))
    obj = finished(nodes, ns, "hello")
    assert obj["status"]["phase"] == "Failed"
    state = terminated(obj)
    assert state is not None and state["exitCode"] == 3
    logs = nodes.kubectl("-n", ns, "logs", "hello")
    assert "hello from hello" in logs
    assert "to-stderr" in logs


def test_kubectl_exec_reaches_a_running_pod_through_its_kubelet(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    apply(nodes, ns, pod("sleeper", image, "sleep 300"))
    running(nodes, ns, "sleeper")
    assert nodes.kubectl("-n", ns, "exec", "sleeper", "--", "cat", "/proc/1/cmdline").startswith("sleep")


def test_a_pod_over_its_memory_limit_ends_oomkilled(nodes: LocalCluster, image: str, ns: str) -> None:
    # The shell itself grows past the limit (a child killed alone would leave exit code 0).
    script = "x=; while :; do x=$x$x$x$x$x$x$x$x$x${x}0123456789; done"
    apply(nodes, ns, pod("hog", image, script, memory="32Mi"))
    state = terminated(finished(nodes, ns, "hog", timeout=120))
    assert state is not None
    assert state["reason"] == "OOMKilled"
    assert state["exitCode"] == 137


def test_a_pod_past_its_active_deadline_ends_deadline_exceeded(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    apply(nodes, ns, pod("late", image, "sleep 600", deadline=3))
    obj = finished(nodes, ns, "late")
    assert obj["status"]["phase"] == "Failed"
    assert obj["status"]["reason"] == "DeadlineExceeded"


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_a_restricted_pod_runs_under_the_restricted_pod_security_standard(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    nodes.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    script = "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; id -u; touch /x 2>&1; exit 0"
    apply(nodes, ns, pod("tight", image, script, security=RESTRICTED_CONTAINER))
    obj = finished(nodes, ns, "tight")
    assert obj["status"]["phase"] == "Succeeded"
    logs = nodes.kubectl("-n", ns, "logs", "tight")
    assert "Seccomp:\t2" in logs
    assert "NoNewPrivs:\t1" in logs
    assert "CapEff:\t0000000000000000" in logs
    assert "65532" in logs
    assert "Read-only file system" in logs
    # The same namespace refuses a Pod that is not restricted: admission really enforces.
    plain = pod("loose", image, "true")
    result = subprocess.run(
        [*_kubectl(nodes), "-n", ns, "apply", "-f", "-"],
        input=json.dumps(plain),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr


def _kubectl(nodes: LocalCluster) -> list[str]:
    return [str(BIN / "kubectl"), "--kubeconfig", str(nodes.kubeconfig)]


def test_a_deployment_spreads_its_pods_across_both_nodes(nodes: LocalCluster, image: str, ns: str) -> None:
    labels = {"app": "spread"}
    template = pod("spread", image, "sleep 300", labels=labels)
    template["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": labels},
        }
    ]
    template["spec"]["restartPolicy"] = "Always"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "spread"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": template["spec"]},
        },
    }
    apply(nodes, ns, deployment)

    def placed() -> dict[str, int] | None:
        items = json.loads(nodes.kubectl("-n", ns, "get", "pods", "-l", "app=spread", "-o", "json"))["items"]
        ready = [p for p in items if p["status"].get("phase") == "Running"]
        if len(ready) < 4:
            return None
        counts: dict[str, int] = {}
        for p in ready:
            counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
        return counts

    counts = wait_for(placed, 120, "4 running replicas")
    assert counts == {"node1": 2, "node2": 2}


def test_an_image_pushed_to_the_local_registry_is_pulled_by_the_kubelet(nodes: LocalCluster, ns: str) -> None:
    ref = build_busybox_image()
    tag = f"pushed/busybox:{uuid.uuid4().hex[:8]}"
    target = push_image(ref, nodes.registry, tag)
    manifest = pod("pulled", target, "echo pulled-from-registry", pull="Always")
    apply(nodes, ns, manifest)
    obj = finished(nodes, ns, "pulled")
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    assert "pulled-from-registry" in nodes.kubectl("-n", ns, "logs", "pulled")
    events = nodes.kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.name=pulled")
    assert "Pulled" in events and target in events


def test_a_missing_image_in_the_local_registry_fails_to_pull(nodes: LocalCluster, ns: str) -> None:
    target = f"{nodes.registry}/pushed/never-pushed:{uuid.uuid4().hex[:8]}"
    apply(nodes, ns, pod("nopull", target, "true", pull="Always"))

    def waiting_reason() -> str | None:
        statuses = pod_json(nodes.kubectl, ns, "nopull")["status"].get("containerStatuses", [])
        reason = statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None
        return reason if reason in ("ErrImagePull", "ImagePullBackOff") else None

    assert wait_for(waiting_reason, 60, "pull failure") in ("ErrImagePull", "ImagePullBackOff")


class HostListener:
    """A TCP listener on the host's node-bridge address, counting connections."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.sendall(b"host-says-hi\n")
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _probe(nodes: LocalCluster, ns: str, name: str, target: str, port: int) -> bool:
    out = subprocess.run(
        [*_kubectl(nodes), "-n", ns, "exec", name, "--", "sh", "-c", f"nc -w 2 {target} {port} </dev/null"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return out.returncode == 0 and "hi" in out.stdout


def test_network_policy_denies_a_pod_egress_to_another_pod_and_to_the_host_and_allows_the_allowed_one(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    node_set = nodes.node_set()
    assert node_set is not None
    host_ip = node_set.slot.host_ip
    listener = HostListener(host_ip)
    try:
        serve = "while :; do echo pod-says-hi | nc -l -p 8080; done"
        apply(nodes, ns, pod("server", image, serve, labels={"role": "server"}, node="node2"))
        apply(nodes, ns, pod("denied", image, "sleep 600", labels={"role": "denied"}, node="node1"))
        apply(nodes, ns, pod("allowed", image, "sleep 600", labels={"role": "allowed"}, node="node1"))
        server_ip = running(nodes, ns, "server")["status"]["podIP"]
        running(nodes, ns, "denied")
        running(nodes, ns, "allowed")
        # Without a policy, both reach the Pod on the other node and the host.
        assert _probe(nodes, ns, "denied", server_ip, 8080)
        assert _probe(nodes, ns, "denied", host_ip, listener.port)
        policies = [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "deny-all-egress"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
            },
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "allow-egress"},
                "spec": {
                    "podSelector": {"matchLabels": {"role": "allowed"}},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"to": [{"podSelector": {"matchLabels": {"role": "server"}}}]},
                        {"to": [{"ipBlock": {"cidr": f"{host_ip}/32"}}]},
                    ],
                },
            },
        ]
        for policy in policies:
            apply(nodes, ns, policy)
        wait_for(lambda: not _probe(nodes, ns, "denied", server_ip, 8080), 60, "pod egress denied")
        before = listener.accepted
        assert not _probe(nodes, ns, "denied", host_ip, listener.port)
        assert listener.accepted == before
        assert _probe(nodes, ns, "allowed", server_ip, 8080)
        assert _probe(nodes, ns, "allowed", host_ip, listener.port)
        assert listener.accepted == before + 1
    finally:
        listener.close()


def test_a_pod_reaches_the_apiserver_through_the_kubernetes_service(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    nodes.kubectl("-n", ns, "create", "role", "pod-reader", "--verb=list", "--resource=pods")
    nodes.kubectl(
        "-n", ns, "create", "rolebinding", "pod-reader", "--role=pod-reader", f"--serviceaccount={ns}:default"
    )
    script = (
        "t=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); "
        'wget -q -O - --no-check-certificate --header "Authorization: Bearer $t" '
        f"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/{ns}/pods"
    )
    apply(nodes, ns, pod("incluster", image, script, service_account_token=True))
    obj = finished(nodes, ns, "incluster")
    logs = nodes.kubectl("-n", ns, "logs", "incluster")
    assert obj["status"]["phase"] == "Succeeded", logs
    listed = json.loads(logs)
    assert listed["kind"] == "PodList"
    assert "incluster" in {item["metadata"]["name"] for item in listed["items"]}


def test_the_teardown_leaves_no_process_mount_cgroup_or_interface_behind(
    tmp_path: Path, nodes: LocalCluster
) -> None:
    """A separate one-node cluster, brought up and down, leaves the host exactly as it was."""
    before_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    local = LocalCluster(tmp_path / "single", nodes=1)
    state = local.up()
    node_set = local.node_set()
    assert node_set is not None
    node = node_set.nodes[0]
    pids = dict(state["pids"])  # type: ignore[call-overload]
    bridge, netns, cgroup = node_set.slot.bridge, node_set.slot.netns_path(1), node.cgroup_root
    assert Path(f"/sys/fs/cgroup/memory{cgroup}").is_dir()
    local.down()
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), name
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path / "single") not in mounts
    assert str(netns) not in mounts
    assert not Path(f"/sys/fs/cgroup/memory{cgroup}").exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f" {bridge}:" not in links
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == before_forward
    assert not (tmp_path / "single").exists()
    assert not node.run_dir.exists()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


def test_a_pod_reaches_another_pod_on_the_other_node_through_a_service_cluster_ip(
    nodes: LocalCluster, image: str, ns: str
) -> None:
    serve = "while :; do echo pod-says-hi | nc -l -p 8080; done"
    apply(nodes, ns, pod("backend", image, serve, labels={"app": "backend"}, node="node2"))
    apply(nodes, ns, pod("client", image, "sleep 600", labels={"app": "client"}, node="node1"))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "backend"},
        "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(nodes, ns, service)
    cluster_ip = json.loads(nodes.kubectl("-n", ns, "get", "service", "backend", "-o", "json"))["spec"][
        "clusterIP"
    ]
    running(nodes, ns, "backend")
    running(nodes, ns, "client")
    assert wait_for(lambda: _probe(nodes, ns, "client", cluster_ip, 80), 60, "Service reachable")
    # The Service's port is the only one translated: the ClusterIP answers nothing on 8080.
    assert not _probe(nodes, ns, "client", cluster_ip, 8080)
