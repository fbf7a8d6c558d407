"""A real, local Kubernetes cluster: etcd, kube-apiserver and kube-controller-manager, and on demand
real nodes (kube-scheduler, a registry; per node containerd, kubelet, kube-proxy, kube-router's firewall).

Built from the upstream Go modules by hack/build-control-plane.sh and hack/build-node.sh; started here
with generated certificates: on 127.0.0.1 without nodes, on the node bridge with them (hack/localnet.py).
One implementation serves `hack/cluster up|down|status`, the demo and the test suite's fixtures.

    cluster = LocalCluster(state_dir)            # control plane only
    cluster = LocalCluster(state_dir, nodes=2)   # plus two Ready nodes
    cluster.up()          # returns when /readyz answers ok (and the nodes are Ready); writes kubeconfig
    cluster.down()        # stops what it started, by PID, socket and path, and removes its data
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import localnet
from localnode import NodeError
from localpki import kubeconfig_text, write_pki
from nodeset import NODE_CONTROLLERS, NodeSet, push_image

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
BIN = HACK / "bin"
DEFAULT_STATE = REPO / ".cluster"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


class ClusterError(RuntimeError):
    """The control plane could not be built, started or reached; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy")
NODE_EXTRAS = ("pause.tar", "registry", "kube-router")


def ensure_binaries(nodes: bool = False) -> Path:
    """Build (or link from the cache) the binaries; fast when they are up to date."""
    missing = [
        c for c in (*COMPONENTS, "kubectl", *(NODE_BINARIES if nodes else ())) if not (BIN / c).exists()
    ]
    if missing:
        result = subprocess.run(["bash", str(HACK / "build-control-plane.sh")], check=False)
        if result.returncode != 0:
            raise ClusterError(f"building the control plane failed (exit {result.returncode}); see above")
    if nodes and not all((BIN / c).exists() for c in NODE_EXTRAS):
        result = subprocess.run(["bash", str(HACK / "build-node.sh")], check=False)
        if result.returncode != 0:
            raise ClusterError(f"building the node components failed (exit {result.returncode}); see above")
    return BIN


# --- processes ----------------------------------------------------------------------------------


@dataclass
class LocalCluster:
    state_dir: Path = DEFAULT_STATE
    nodes: int = 0
    # Popen objects of the processes this instance started, kept so they are reaped on down().
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False, compare=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> dict[str, object]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def up(self, timeout: float = 120.0) -> dict[str, object]:
        """Start the control plane (idempotent: a healthy running one is reused)."""
        current = self.state()
        if current and current.get("nodes", 0) == self.nodes and self._healthy(str(current["server"])):
            return current
        self.down()
        if not 0 <= self.nodes <= localnet.MAX_NODES:
            raise ClusterError(f"nodes: {self.nodes} is not between 0 and {localnet.MAX_NODES}")
        ensure_binaries(nodes=self.nodes > 0)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.state_dir
        data = Path(os.path.realpath(shm / f"sprint-orchestrator-etcd-{os.getpid()}-{time.time_ns()}"))
        state: dict[str, object] = {"etcd_data": str(data), "pids": {}, "nodes": self.nodes}
        nodeset = None
        if self.nodes:
            try:
                slot = localnet.claim_slot(str(self.state_dir.resolve()))
            except localnet.NetworkError as exc:
                raise ClusterError(str(exc)) from exc
            state |= {"slot": slot.index, "ip_forward": localnet.read_ip_forward()}
            self._save(state)
            nodeset = self._nodeset(state)
            assert nodeset is not None
            try:
                localnet.setup(slot, self.nodes)
            except localnet.NetworkError as exc:
                self.down()
                raise ClusterError(str(exc)) from exc
            api_host, api_port = slot.api_ip, 443
        else:
            api_host, api_port = "127.0.0.1", free_port()
        pki = self.state_dir / "pki"
        write_pki(pki, extra_ips=[api_host] if nodeset else [])
        etcd_port, peer_port = free_port(), free_port()
        server = f"https://{api_host}:{api_port}"
        state["server"] = server
        self._save(state)
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        pids: dict[str, int] = {}
        pids["etcd"] = self._spawn("etcd", self._etcd_args(data, etcd_port, peer_port), logs)
        state["pids"] = pids
        self._save(state)
        self._wait(lambda: self._tcp_open(etcd_port), timeout, "etcd", logs)
        api_args = self._apiserver_args(pki, etcd_port, api_port)
        if nodeset:
            nodeset.prepare_pki(pki)
            api_args = [*_node_mode(api_args, nodeset), *nodeset.apiserver_args(pki)]
        state["apiserver_args"] = api_args  # for restart_apiserver(): same port, certificates and etcd
        pids["kube-apiserver"] = self._spawn("kube-apiserver", api_args, logs)
        self._save(state)
        self._wait(lambda: self._healthy(server), timeout, "kube-apiserver", logs)
        self.kubeconfig.write_text(kubeconfig_text(server, pki))
        self.kubeconfig.chmod(0o600)
        kcm_args = self._kcm_args(pki)
        if nodeset:
            kcm_args = [
                a if not a.startswith("--controllers=") else f"{a},{','.join(NODE_CONTROLLERS)}"
                for a in kcm_args
            ]
        pids["kube-controller-manager"] = self._spawn("kube-controller-manager", kcm_args, logs)
        self._save(state)
        if nodeset:
            spawn = lambda name, argv: self._spawn_argv(name, argv, logs)  # noqa: E731
            try:
                pids |= nodeset.start(spawn, pki, server, self.kubectl)
                self._save(state)
                nodeset.wait_ready(self.kubectl, timeout)
                pids |= nodeset.start_network_agents(spawn)
                self._save(state)
            except Exception as exc:
                self._save(state)
                tails = "\n".join(
                    f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                    for log in sorted(logs.iterdir())
                )
                self.down()
                raise ClusterError(f"nodes did not come up: {exc}\n{tails}") from exc
            state["registry"] = nodeset.registry
            self._save(state)
        return state

    def down(self) -> None:
        """Stop every process this cluster started (by PID) and remove its data."""
        current = self.state()
        pids = current.get("pids", {})
        assert isinstance(pids, dict)
        nodeset = self._nodeset(current)
        left: list[str] = []
        if nodeset:
            left = nodeset.stop_nodes(pids, _terminate)
            for name in ("registry", "kube-scheduler"):
                if isinstance(pid := pids.get(name), int):
                    _terminate(pid)
        for name in reversed(COMPONENTS):
            pid = pids.get(name)
            if isinstance(pid, int):
                # With nodes, the apiserver's graceful shutdown can wait out its own watch streams
                # (10 s seen); its data is discarded anyway.
                _terminate(pid, grace=3.0 if nodeset and name == "kube-apiserver" else 10.0)
        for child in self._children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children.clear()
        etcd_data = current.get("etcd_data")
        if isinstance(etcd_data, str):
            shutil.rmtree(etcd_data, ignore_errors=True)
        if nodeset:
            nodeset.teardown_network(str(current.get("ip_forward", "")))
        if left:
            raise ClusterError(f"teardown left mounts or cgroups behind: {left}")
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop the kube-apiserver alone (SIGTERM, then SIGKILL): etcd and its data stay, clients see
        connections refused until start_apiserver()."""
        pids = self.state().get("pids", {})
        assert isinstance(pids, dict)
        pid = pids.get("kube-apiserver")
        if isinstance(pid, int):
            _terminate(pid, grace=10.0)
        for child in [c for c in self._children if c.pid == pid]:
            child.wait(timeout=10)
            self._children.remove(child)

    def start_apiserver(self, timeout: float = 120.0) -> None:
        """Start the kube-apiserver again with the arguments of up() (same port, certificates and etcd
        data) and return when /readyz answers ok."""
        state = self.state()
        args, pids = state.get("apiserver_args"), state.get("pids", {})
        if not isinstance(args, list) or not isinstance(pids, dict):
            raise ClusterError("start_apiserver: no running cluster started by up() in this state dir")
        logs = self.state_dir / "logs"
        pids["kube-apiserver"] = self._spawn("kube-apiserver", [str(a) for a in args], logs)
        self._save(state)
        self._wait(lambda: self._healthy(str(state["server"])), timeout, "kube-apiserver", logs)

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """The kube-apiserver restarted with etcd kept (what a control-plane upgrade does)."""
        self.stop_apiserver()
        self.start_apiserver(timeout)

    @property
    def registry(self) -> str:
        """host:port of the cluster's registry (plain HTTP on the node bridge); only with nodes."""
        return str(self.state()["registry"])

    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def apply_crds(self, path: Path, names: tuple[str, ...] = ("sprints", "tasks")) -> None:
        """Apply the CRDs under `path` and wait until each is Established."""
        self.kubectl("apply", "--server-side", "-f", str(path))
        self.wait_established(names)

    def wait_established(self, names: tuple[str, ...] = ("sprints", "tasks"), timeout_s: float = 60) -> None:
        """Polled, not `kubectl wait`: right after the apply a CRD may have no status yet, which
        `kubectl wait --for=condition` (and a jsonpath filter) reports as an error instead of waiting."""
        deadline = time.monotonic() + timeout_s
        for name in names:
            while True:
                found = json.loads(self.kubectl("get", f"crd/{name}.sprintorchestrator.dev", "-o", "json"))
                conditions = (found.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"crd/{name}.sprintorchestrator.dev not Established in {timeout_s:.0f} s"
                    )
                time.sleep(0.2)

    def node_set(self) -> NodeSet | None:
        """The running nodes (containerd sockets, directories), or None for a control plane only."""
        return self._nodeset(self.state())

    def _nodeset(self, state: dict[str, object]) -> NodeSet | None:
        slot, count = state.get("slot"), state.get("nodes", 0)
        if not isinstance(slot, int) or not isinstance(count, int) or count < 1:
            return None
        cluster_id = f"{slot}"
        return NodeSet(localnet.Slot(slot), count, self.state_dir, cluster_id, BIN)

    def status(self) -> dict[str, object]:
        current = self.state()
        if not current:
            return {"running": False}
        pids = current.get("pids", {})
        assert isinstance(pids, dict)
        alive = {name: _alive(pid) for name, pid in pids.items()}
        return {
            "running": all(alive.values()) and self._healthy(str(current["server"])),
            "server": current["server"],
            "kubeconfig": str(self.kubeconfig),
            "processes": {name: {"pid": pids[name], "alive": alive[name]} for name in pids},
        }

    # -- helpers --

    def _save(self, state: dict[str, object]) -> None:
        self._state_file.write_text(json.dumps(state, indent=2))

    def _spawn(self, name: str, args: list[str], logs: Path) -> int:
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            [str(BIN / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._children.append(proc)
        return proc.pid

    def _spawn_argv(self, name: str, argv: list[str], logs: Path) -> int:
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self._children.append(proc)
        return proc.pid

    @staticmethod
    def _etcd_args(data: Path, port: int, peer: int) -> list[str]:
        client, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
        return [
            "--name=default",
            f"--data-dir={data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    @staticmethod
    def _apiserver_args(pki: Path, etcd_port: int, api_port: int) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            "--anonymous-auth=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ]

    def _kcm_args(self, pki: Path) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
            "--concurrent-gc-syncs=5",
            "--v=0",
        ]

    @staticmethod
    def _tcp_open(port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    @staticmethod
    def _healthy(server: str) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"{server}/readyz", context=context, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _wait(self, check: object, timeout: float, what: str, logs: Path) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        tail = (logs / f"{what}.log").read_text(errors="replace")[-3000:]
        raise ClusterError(f"{what} did not become ready within {timeout:.0f}s; log tail:\n{tail}")


def _node_mode(args: list[str], nodeset: NodeSet) -> list[str]:
    """The apiserver flags of a cluster with nodes: bound on the `kubernetes` Service's ClusterIP (a
    real address on the node bridge), which Pods and kubelets reach; endpoints kept by the lease
    reconciler; Node authorization; the `--kubelet-*` flags come from the NodeSet."""
    slot = nodeset.slot
    replaced = {
        "--bind-address": slot.api_ip,
        "--advertise-address": slot.api_ip,
        "--service-cluster-ip-range": slot.service_cidr,
        "--endpoint-reconciler-type": "lease",
    }
    out = []
    for arg in args:
        key = arg.split("=", 1)[0]
        if key == "--authorization-mode":
            continue
        out.append(f"{key}={replaced[key]}" if key in replaced else arg)
    return out


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
        if waited == pid or not _alive(pid) or _zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "build", "kubeconfig", "push"])
    parser.add_argument(
        "image", nargs="?", help="push: a Podman image to push to the cluster's registry (needs --nodes up)"
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    parser.add_argument(
        "--nodes", type=int, default=0, help=f"real nodes to start with `up` (0-{localnet.MAX_NODES})"
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.state_dir, nodes=args.nodes)
    try:
        if args.command == "build":
            print(ensure_binaries(nodes=True))
        elif args.command == "up":
            started = time.monotonic()
            state = cluster.up()
            nodes = f" with {args.nodes} Ready node(s), registry {state['registry']}" if args.nodes else ""
            print(f"control plane ready at {state['server']}{nodes} in {time.monotonic() - started:.1f}s")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"export PATH={BIN}:$PATH   # kubectl built from the same Kubernetes release")
        elif args.command == "down":
            cluster.down()
            print("control plane stopped")
        elif args.command == "kubeconfig":
            print(cluster.kubeconfig)
        elif args.command == "push":
            if not args.image or "registry" not in cluster.state():
                raise ClusterError("push IMAGE needs an image and a cluster started with `up --nodes N`")
            name = args.image.split("/", 1)[1] if args.image.startswith("localhost/") else args.image
            try:
                print(push_image(args.image, cluster.registry, name))  # the reference for Pods
            except NodeError as exc:
                raise ClusterError(str(exc)) from exc
        else:
            print(json.dumps(cluster.status(), indent=2))
            return 0 if cluster.status().get("running") else 3
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
