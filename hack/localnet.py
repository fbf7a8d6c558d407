"""The host side of the local cluster's nodes: addresses, a bridge, one network namespace per node.

Each node runs in its own network namespace (like a kind node), joined to a host bridge by a veth:
the host's `ip_forward` stays untouched (forwarding is switched on inside the node namespaces only),
each node has its own nftables tables (its NetworkPolicy enforcer does not see the other node's) and
two clusters on one machine do not collide, because every address and name derives from a slot that
is claimed atomically by creating the bridge.

    slot 7:  bridge sok7 on the host with 10.250.7.254/24 (nodes, registry) and 10.96.7.1/32 (the
             apiserver, which is also the `kubernetes` Service's ClusterIP)
             node N: a network namespace kept by a bind mount on /run/sprint-orchestrator/7-nodeN/netns
             (not iproute2's /run/netns, whose shared mount would outlive the cluster), eth0
             10.250.7.N/24, Pod CIDR 10.(200+N).7.0/24
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

MAX_NODES = 2
SLOTS = 250
RUN_ROOT = Path("/run/sprint-orchestrator")


class NetworkError(RuntimeError):
    """The node network could not be set up; the message has the failing command and its error."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", *args], check=check)


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Slot:
    index: int

    @property
    def bridge(self) -> str:
        return f"sok{self.index}"

    @property
    def host_ip(self) -> str:
        return f"10.250.{self.index}.254"

    @property
    def api_ip(self) -> str:
        return f"10.96.{self.index}.1"

    @property
    def service_cidr(self) -> str:
        return f"10.96.{self.index}.0/24"

    def node_ip(self, n: int) -> str:
        return f"10.250.{self.index}.{n}"

    def pod_cidr(self, n: int) -> str:
        return f"10.{200 + n}.{self.index}.0/24"

    def run_dir(self, n: int) -> Path:
        return RUN_ROOT / f"{self.index}-node{n}"

    def netns_path(self, n: int) -> Path:
        return self.run_dir(n) / "netns"

    def veth(self, n: int) -> str:
        return f"so{self.index}n{n}h"


def claim_slot(seed: str) -> Slot:
    """Create a free bridge and return its slot; `ip link add` failing on an existing name is the lock."""
    start = zlib.crc32(seed.encode()) % SLOTS
    last = ""
    for step in range(SLOTS):
        slot = Slot((start + step) % SLOTS + 1)
        result = ip("link", "add", slot.bridge, "type", "bridge", check=False)
        if result.returncode == 0:
            return slot
        last = result.stderr.strip()
        if "File exists" not in last:
            raise NetworkError(f"ip link add {slot.bridge} type bridge: {last}")
    raise NetworkError(f"no free node-network slot (last error: {last})")


def setup(slot: Slot, nodes: int) -> None:
    """Address the (already claimed) bridge and create one namespace per node, routed to each other."""
    ip("addr", "add", f"{slot.host_ip}/24", "dev", slot.bridge)
    ip("addr", "add", f"{slot.api_ip}/32", "dev", slot.bridge)
    ip("link", "set", slot.bridge, "up")
    for n in range(1, nodes + 1):
        path = slot.netns_path(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        _run(["unshare", f"--net={path}", "true"])
        node_ip = ["nsenter", f"--net={path}", "ip"]
        # Created inside the node's namespace, the host end is sent to this process's (the host's).
        _run(
            [
                *node_ip,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                slot.veth(n),
                "netns",
                str(os.getpid()),
            ]
        )
        ip("link", "set", slot.veth(n), "master", slot.bridge, "up")
        _run([*node_ip, "link", "set", "lo", "up"])
        _run([*node_ip, "addr", "add", f"{slot.node_ip(n)}/24", "dev", "eth0"])
        _run([*node_ip, "link", "set", "eth0", "up"])
        _run([*node_ip, "route", "add", "default", "via", slot.host_ip])
        # The host reaches every Pod directly (replies to Pods, tests); node to node stays on the bridge.
        ip("route", "add", slot.pod_cidr(n), "via", slot.node_ip(n), "dev", slot.bridge)
        for other in range(1, nodes + 1):
            if other != n:
                _run([*node_ip, "route", "add", slot.pod_cidr(other), "via", slot.node_ip(other)])


def teardown(slot: Slot, nodes: int) -> None:
    """Release the node namespaces (their veths, bridges, iptables go with the last process) and delete
    the host bridge."""
    libc = ctypes.CDLL(None, use_errno=True)
    for n in range(1, nodes + 1):
        path = slot.netns_path(n)
        libc.umount2(str(path).encode(), 2)  # MNT_DETACH; fails harmlessly when not mounted
        ip("link", "delete", slot.veth(n), check=False)
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()
    with contextlib.suppress(OSError):
        RUN_ROOT.rmdir()
    ip("link", "delete", slot.bridge, check=False)


def in_netns(slot: Slot, n: int, argv: list[str]) -> list[str]:
    """`argv` run inside node n's network namespace only (mounts, /sys and cgroups stay the host's)."""
    return ["nsenter", f"--net={slot.netns_path(n)}", "--", *argv]


def read_ip_forward() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    return ""


def restore_ip_forward(value: str) -> None:
    if value and read_ip_forward() != value:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(value + "\n")
