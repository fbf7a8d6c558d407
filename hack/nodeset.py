"""Start and stop the nodes of the local cluster, its registry and its NetworkPolicy enforcers
(kube-router's firewall, one per node, inside the node's network namespace).

Used by LocalCluster (hack/localcluster.py) when `--nodes N` is asked for. The spawn callable starts a
process in its own session and returns its PID; every PID goes into the cluster's state file so that
`hack/cluster down` from another process stops exactly these.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import localnet
from localnode import Node, NodeError, unmount_under
from localpki import issue, kubeconfig_text

REGISTRY_PORT = 5000
# Controllers the control plane adds when it has nodes: without node-lifecycle the not-ready taint is
# never removed; without root-ca-certificate-publisher no Pod can mount kube-root-ca.crt.
NODE_CONTROLLERS = (
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    "job-controller",
    "ttl-after-finished-controller",
    "replicaset-controller",
    "deployment-controller",
    "taint-eviction-controller",
    "endpointslice-controller",
)
NETPOL_USER = "system:kube-router"
NETPOL_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "sprint-orchestrator:kube-router"}
rules:
- apiGroups: [""]
  resources: [pods, namespaces, nodes, services, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "sprint-orchestrator:kube-router"}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: "sprint-orchestrator:kube-router"
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}
"""

Spawn = Callable[[str, list[str]], int]


@dataclass
class NodeSet:
    slot: localnet.Slot
    count: int
    state_dir: Path
    cluster_id: str
    bin: Path

    @property
    def nodes(self) -> list[Node]:
        root = self.state_dir / "nodes"
        return [Node(self.slot, n, root, self.cluster_id) for n in range(1, self.count + 1)]

    @property
    def registry(self) -> str:
        return f"{self.slot.host_ip}:{REGISTRY_PORT}"

    def prepare_pki(self, pki: Path) -> None:
        issue(pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
        issue(pki, "kube-router", NETPOL_USER)
        issue(pki, "kube-proxy", "system:kube-proxy")  # bound to system:node-proxier by default

    def apiserver_args(self, pki: Path) -> list[str]:
        return [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def start(self, spawn: Spawn, pki: Path, server: str, kubectl: Callable[..., str]) -> dict[str, int]:
        """Registry, kube-scheduler, then per node containerd and kubelet (see start_firewalls)."""
        pids: dict[str, int] = {}
        kubeconfig = self.state_dir / "kubeconfig"
        pids["kube-scheduler"] = spawn(
            "kube-scheduler",
            [
                str(self.bin / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=0",
            ],
        )
        pids["registry"] = spawn(
            "registry", [str(self.bin / "registry"), "serve", str(self._registry_config())]
        )
        kubectl("apply", "-f", "-", input=NETPOL_RBAC)
        for user in ("kube-router", "kube-proxy"):
            (self.state_dir / f"{user}.kubeconfig").write_text(kubeconfig_text(server, pki, user))
        pause = (self.bin / "pause.tar").read_bytes()
        for node in self.nodes:
            node.create_cgroups()
            node.write_files(pki, server, self.registry)
            pids[f"{node.name}/containerd"] = spawn(
                f"{node.name}-containerd",
                localnet.in_netns(self.slot, node.n, ["containerd", *node.containerd_args()]),
            )
        for node in self.nodes:
            _wait(node.containerd_ready, 30, f"{node.name} containerd")
            node.import_image(pause)
            pids[f"{node.name}/kubelet"] = spawn(
                f"{node.name}-kubelet",
                localnet.in_netns(self.slot, node.n, [str(self.bin / "kubelet"), *node.kubelet_args()]),
            )
        _wait(lambda: _tcp_open(self.slot.host_ip, REGISTRY_PORT), 30, "registry")
        return pids

    def start_network_agents(self, spawn: Spawn) -> dict[str, int]:
        """Per node, in the node's namespace: kube-proxy (iptables mode; Services' ClusterIPs) and
        kube-router's NetworkPolicy firewall (it needs the Node object, so the kubelets have registered
        first). Bridged Pod traffic on the node must cross iptables for same-node policies: switched on
        inside the node namespace only. Neither touches a host-wide conntrack setting."""
        pids: dict[str, int] = {}
        for node in self.nodes:
            pids[f"{node.name}/kube-proxy"] = spawn(
                f"{node.name}-kube-proxy",
                localnet.in_netns(
                    self.slot,
                    node.n,
                    [
                        str(self.bin / "kube-proxy"),
                        f"--kubeconfig={self.state_dir / 'kube-proxy.kubeconfig'}",
                        f"--hostname-override={node.name}",
                        "--proxy-mode=iptables",
                        "--conntrack-max-per-core=0",
                        "--conntrack-tcp-timeout-established=0",
                        "--conntrack-tcp-timeout-close-wait=0",
                        "--metrics-bind-address=127.0.0.1:10249",
                        "--healthz-bind-address=127.0.0.1:10256",
                        "--v=0",
                    ],
                ),
            )
            sysctl = localnet.in_netns(
                self.slot, node.n, ["sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables"]
            )
            subprocess.run(sysctl, check=True, capture_output=True)
            pids[f"{node.name}/kube-router"] = spawn(
                f"{node.name}-kube-router",
                localnet.in_netns(
                    self.slot,
                    node.n,
                    [
                        str(self.bin / "kube-router"),
                        f"--kubeconfig={self.state_dir / 'kube-router.kubeconfig'}",
                        f"--hostname-override={node.name}",
                        "--run-firewall=true",
                        "--run-router=false",
                        "--run-service-proxy=false",
                        "--run-loadbalancer=false",
                        f"--service-cluster-ip-range={self.slot.service_cidr}",
                        "--health-port=0",
                        "--metrics-port=0",
                        "--v=1",
                    ],
                ),
            )
        return pids

    def wait_ready(self, kubectl: Callable[..., str], timeout: float) -> None:
        names = {node.name for node in self.nodes}

        def ready() -> bool:
            out = json.loads(kubectl("get", "nodes", "-o", "json"))
            ok = set()
            for item in out.get("items", []):
                conditions = {c["type"]: c["status"] for c in item["status"].get("conditions", [])}
                taints = {t["key"] for t in item["spec"].get("taints", [])}
                if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                    ok.add(item["metadata"]["name"])
            return names <= ok

        _wait(ready, timeout, f"nodes {sorted(names)} Ready")

    def stop_nodes(self, pids: dict[str, int], terminate: Callable[[int], None]) -> list[str]:
        """Stop every node exactly; return what could not be removed (empty when the host is clean)."""
        left: list[str] = []
        for node in self.nodes:
            for proc in ("kubelet", "kube-router", "kube-proxy"):
                if (pid := pids.get(f"{node.name}/{proc}")) is not None:
                    terminate(pid)
            node.kill_cgroup_processes()
            if (pid := pids.get(f"{node.name}/containerd")) is not None:
                terminate(pid)
            node.kill_shims()
            node.kill_cgroup_processes()
            left += node.unmount_all()
            left += node.remove_cgroups()
            node.remove_run_dir()
        left += unmount_under(self.state_dir / "nodes")
        return left

    def teardown_network(self, ip_forward: str) -> None:
        localnet.teardown(self.slot, self.count)
        localnet.restore_ip_forward(ip_forward)

    def _registry_config(self) -> Path:
        data = self.state_dir / "registry"
        data.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(data / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": self.registry},
        }
        path = data / "config.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path


def push_image(ref: str, registry: str, name: str) -> str:
    """Push the Podman image `ref` to the cluster's registry as `name` (plain HTTP on the node bridge)."""
    target = f"{registry}/{name}"
    result = subprocess.run(
        ["podman", "push", "--quiet", "--tls-verify=false", ref, f"docker://{target}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode != 0:
        raise NodeError(f"podman push {ref} {target}: {result.stderr.strip()[-2000:]}")
    return target


def podman_archive(ref: str) -> bytes:
    result = subprocess.run(
        ["podman", "save", "--format", "docker-archive", ref], capture_output=True, check=False, timeout=300
    )
    if result.returncode != 0:
        raise NodeError(f"podman save {ref}: {result.stderr.decode()[-2000:]}")
    return result.stdout


def _tcp_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, ValueError, subprocess.SubprocessError, AssertionError):
            pass
        time.sleep(0.2)
    raise NodeError(f"{what} not ready within {timeout:.0f}s")
