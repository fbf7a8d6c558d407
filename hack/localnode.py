"""One node of the local cluster: containerd, kubelet and the NetworkPolicy enforcer, all its own.

Everything a node owns lives under its directory (containerd root, state and socket, runc state,
kubelet root, Pod logs, CNI data) plus one cgroup root per v1 hierarchy and its network namespace
(hack/localnet.py). The teardown removes exactly those: processes by PID, by cgroup and by socket,
mounts under the directory, the cgroups, deepest first.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localnet import RUN_ROOT, Slot
from localpki import issue, kubeconfig_text

PAUSE_IMAGE = "localhost/sprint-orchestrator/pause:local"
CNI_BIN = "/usr/lib/cni"
KUBELET_PORT = 10250


class NodeError(RuntimeError):
    """A node could not be prepared or started; the message says why."""


@dataclass(frozen=True)
class Node:
    slot: Slot
    n: int
    root: Path  # the cluster's nodes/ directory
    cluster_id: str

    @property
    def name(self) -> str:
        return f"node{self.n}"

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def ip(self) -> str:
        return self.slot.node_ip(self.n)

    @property
    def run_dir(self) -> Path:
        """containerd's sockets and kubelet's root (it holds sockets too): a short path of their own (a
        unix socket path has at most 107 bytes, the node directory can be deeper), unique by slot."""
        return self.slot.run_dir(self.n)

    @property
    def kubelet_root(self) -> Path:
        return self.run_dir / "kubelet"

    @property
    def sock(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"/sprint-orchestrator-{self.cluster_id}-{self.name}"

    # --- files ---------------------------------------------------------------------------------

    def write_files(self, pki: Path, server: str, registry: str | None) -> None:
        """containerd, CNI and kubelet configuration, certificates and kubeconfigs for this node."""
        d = self.dir
        for sub in ("containerd", "cni/net.d", "cni/ipam", "certs.d", "kubelet", "pod-logs", "pki"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.kubelet_root.mkdir(parents=True, exist_ok=True)
        node_pki = d / "pki"
        for name in ("ca.crt", "ca.key"):
            (node_pki / name).write_bytes((pki / name).read_bytes())
        issue(node_pki, "kubelet-client", f"system:node:{self.name}", "system:nodes")
        issue(node_pki, "kubelet", self.name, ips=[self.ip], dns=[self.name], server=True)
        (node_pki / "ca.key").unlink()
        (d / "kubelet.kubeconfig").write_text(kubeconfig_text(server, node_pki, "kubelet-client"))
        (d / "containerd" / "config.toml").write_text(self._containerd_config())
        (d / "cni" / "net.d" / "10-node.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        (d / "kubelet" / "config.yaml").write_text(json.dumps(self._kubelet_config(node_pki), indent=2))
        if registry:
            hosts = d / "certs.d" / registry
            hosts.mkdir(parents=True, exist_ok=True)
            (hosts / "hosts.toml").write_text(
                f'server = "http://{registry}"\n\n[host."http://{registry}"]\n'
                '  capabilities = ["pull", "resolve"]\n'
            )

    def _containerd_config(self) -> str:
        d, cri = self.dir, 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{d / "containerd" / "root"}"
state = "{d / "containerd" / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.sock}"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "containerd" / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "/usr/sbin/runc"
  Root = "{d / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{d / "cni" / "net.d"}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{d / "certs.d"}"
"""

    def _cni_config(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": f"sprint-orchestrator-{self.name}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.slot.pod_cidr(self.n)}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _kubelet_config(self, pki: Path) -> dict[str, object]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": str(pki / "kubelet.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failCgroupV1": False,
            "failSwapOn": False,
            "podLogsDir": str(self.dir / "pod-logs"),
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "makeIPTablesUtilChains": False,
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "60s",
            "maxPods": 110,
            "resolvConf": "/etc/resolv.conf",
            "localStorageCapacityIsolation": True,
        }

    def kubelet_args(self) -> list[str]:
        return [
            f"--config={self.dir / 'kubelet' / 'config.yaml'}",
            f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
            f"--root-dir={self.kubelet_root}",
            f"--cert-dir={self.dir / 'pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.ip}",
            "--v=0",
        ]

    def containerd_args(self) -> list[str]:
        return ["--config", str(self.dir / "containerd" / "config.toml")]

    def ctr(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ctr", "--address", str(self.sock), "--namespace", "k8s.io", *args],
            input=input,
            capture_output=True,
            check=False,
            timeout=300,
        )

    def containerd_ready(self) -> bool:
        return self.sock.exists() and self.ctr("version").returncode == 0

    def import_image(self, archive: bytes) -> None:
        result = self.ctr("images", "import", "-", input=archive)
        if result.returncode != 0:
            raise NodeError(f"{self.name}: ctr images import failed: {result.stderr.decode()[-2000:]}")

    # --- cgroups -------------------------------------------------------------------------------

    def create_cgroups(self) -> None:
        for hierarchy in cgroup_hierarchies():
            path = hierarchy / self.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                parent = hierarchy / name
                if parent.exists():
                    (path / name).write_text(parent.read_text())

    def kill_cgroup_processes(self) -> None:
        for _ in range(5):
            pids = set()
            for hierarchy in cgroup_hierarchies():
                base = hierarchy / self.cgroup_root.lstrip("/")
                if base.is_dir():
                    for procs in base.rglob("cgroup.procs"):
                        with contextlib.suppress(OSError):
                            pids |= {int(p) for p in procs.read_text().split()}
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)

    def remove_cgroups(self) -> list[str]:
        left = []
        for hierarchy in cgroup_hierarchies():
            base = hierarchy / self.cgroup_root.lstrip("/")
            if not base.is_dir():
                continue
            dirs = sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for path in [*dirs, base]:
                for _ in range(20):
                    try:
                        path.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)
                else:
                    left.append(str(path))
        return left

    # --- shims, mounts -------------------------------------------------------------------------

    def kill_shims(self) -> None:
        """SIGKILL the containerd shims started for this node's containerd (unique -address socket) and
        remove their sockets, which containerd places in a shared directory."""
        for pid, argv in _processes():
            if "-address" in argv and argv[argv.index("-address") + 1 : argv.index("-address") + 2] == [
                str(self.sock)
            ]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if "-id" in argv:
                    shim_id = argv[argv.index("-id") + 1]
                    digest = hashlib.sha256(f"{self.sock}/k8s.io/{shim_id}".encode()).hexdigest()
                    with contextlib.suppress(OSError):
                        (Path("/run/containerd/s") / digest).unlink()

    def unmount_all(self) -> list[str]:
        return unmount_under(self.dir) + unmount_under(self.run_dir)

    def remove_run_dir(self) -> None:
        if not mounts_under(self.run_dir):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            RUN_ROOT.rmdir()  # only when no other cluster uses it


def cgroup_hierarchies() -> list[Path]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(_unescape(left.split()[4])))
    return found


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == str(path) or point.startswith(prefix):
            found.append(point)
    return found


def unmount_under(path: Path) -> list[str]:
    """Lazily unmount every mount at or below `path`, deepest first; return what could not go."""
    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    for _ in range(10):
        points = mounts_under(path)
        if not points:
            return []
        for point in sorted(points, key=lambda p: -len(p)):
            libc.umount2(point.encode(), mnt_detach)
    return mounts_under(path)


def _processes() -> list[tuple[int, list[str]]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "cmdline").read_bytes()
            found.append((int(entry.name), raw.decode(errors="replace").split("\0")))
    return found
