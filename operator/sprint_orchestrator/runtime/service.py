"""The Podman API service process: `podman system service` on a unix socket under the run dir.

The service is started in its own session so it outlives an operator restart; the next operator
process finds the socket answering and reuses it. Containers never depend on the service (conmon
supervises them), so stopping it never stops a task.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuntimeUnavailable

SOCKET_NAME = "podman.sock"
TMP_NAME = "podman-tmp"  # the service's TMPDIR: what a killed service left there goes at the next start
_START_TIMEOUT_S = 15.0
_PASSED = ("PATH", "HOME", "LANG", "TMPDIR", "XDG_RUNTIME_DIR")


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen[bytes] | None  # None when we did not start it

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def socket_url(run_dir: Path) -> str:
    return f"unix://{run_dir / SOCKET_NAME}"


def podman_environment(env: Mapping[str, str], containers_conf: Path | None) -> dict[str, str]:
    """The environment of every podman process we start: ours, plus CONTAINERS_CONF when known."""
    out = {key: value for key, value in env.items() if key in _PASSED or key.startswith("CONTAINERS_")}
    out.setdefault("PATH", os.defpath)
    if containers_conf is not None:
        out["CONTAINERS_CONF"] = str(containers_conf)
    return out


def start_service(run_dir: Path, env: Mapping[str, str]) -> ServiceProcess:
    """Start `podman system service` on run_dir/podman.sock and wait until it accepts connections (the
    socket file appears at bind(), a moment before listen(): a client in between is refused)."""
    podman = shutil.which("podman", path=env.get("PATH"))
    if podman is None:
        raise RuntimeUnavailable("podman is not installed or not on PATH: run hack/setup-podman.sh")
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / SOCKET_NAME
    sock.unlink(missing_ok=True)
    tmp = run_dir / TMP_NAME  # no service answers on the socket: none uses it any more
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    log = (run_dir / "podman-service.log").open("ab")
    # cwd: conmon drops files (e.g. `oom`) into its working directory; keep them in the run dir.
    process = subprocess.Popen(
        [podman, "system", "service", "--time", "0", socket_url(run_dir)],
        cwd=run_dir,
        env={**env, "TMPDIR": str(tmp)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _accepting(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (run_dir / "podman-service.log").read_text(errors="replace")[-800:]
            raise RuntimeUnavailable(
                f"podman system service did not start (log {run_dir}/podman-service.log): {tail}"
            )
        time.sleep(0.02)
    return ServiceProcess(socket_url(run_dir), process)


def _accepting(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
