"""The NetworkPolicy canary of the Kubernetes runtime: a port on the operator's transfer host that every
task and gate Pod's policy leaves out, so a Pod that can reach it is not yet (or never) held by its
policy.

Why: a NetworkPolicy is created before its Pod, but the CNI programs a new Pod's rules only once it sees
the Pod; measured on the local cluster (kube-router), a new Pod reached a host port its policy denies for
its first 0.5-1.5 s. A command started at once (an agent, the code a gate judges) would have the network
for that long. So the Pod's wrapper (podspec.py) waits, beside the workspace download, until the canary no
longer answers, and runs the command only then; if it still answers after `containers.network_policy_wait`
the Pod ends without running it, saying the policy never took hold (a CNI that enforces no
NetworkPolicy). The canary itself accepts and closes: it serves nothing.

Like the proxy's, the port is configured (`containers.canary_port`; the chart's Service exposes it) or
taken free and remembered across restarts (an adopted Pod's wrapper may still be waiting on it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class Canary:
    def __init__(self, host: str, port: int, remembered: Path) -> None:
        self.socket = listener(host, port, remembered)
        self.port = int(self.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="networkpolicy-canary", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:  # closed
                return
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()


def listener(host: str, port: int, remembered: Path) -> socket.socket:
    """A listening socket on the configured port, else on the port of the last run (running Pods name it),
    else on any free one (remembered for the next run)."""
    if not port:
        with contextlib.suppress(OSError, ValueError):
            return socket.create_server((host, int(remembered.read_text())), backlog=128)
    sock = socket.create_server((host, port), backlog=128)
    if not port:
        remembered.write_text(str(sock.getsockname()[1]))
    return sock
