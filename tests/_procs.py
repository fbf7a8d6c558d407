"""The processes a test session starts, found and stopped by PID.

The session's pytest process becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process whose
parent dies (the `podman system service` of a SIGKILLed operator, a daemonising conmon) is re-parented
to pytest instead of init, so "every process this session started, and their children" is exactly the
tree under the pytest process, and processes of other test runs on the machine are never in it.
Orphans that exit stay zombies until `reap_orphans()` (nothing else waits for them): harmless, and not
counted as alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {self.cmdline}"


def become_subreaper() -> bool:
    """Adopt the orphans of our descendants; False where the kernel does not allow it."""
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def _read(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip() or stat.split()[1]
    return Proc(pid, int(fields[1]), fields[0], cmdline)


def processes() -> list[Proc]:
    procs = (_read(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [p for p in procs if p is not None]


def descendants(root: int | None = None) -> list[Proc]:
    """Live (not zombie) processes below `root` (default: this process)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[Proc]] = {}
    for proc in processes():
        children.setdefault(proc.ppid, []).append(proc)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child.pid)
            if child.state not in ("Z", "X"):
                out.append(child)
    return out


def alive(pid: int) -> bool:
    proc = _read(pid)
    return proc is not None and proc.state not in ("Z", "X")


def reap_orphans() -> None:
    """Collect the exit status of adopted children that have exited (never a Popen's: call at the end)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop(pid: int, grace: float = 30.0) -> None:
    """SIGTERM one process we started, SIGKILL after `grace` seconds; reap it when it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc = _read(pid)
    if proc is not None and proc.ppid == os.getpid():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def podman_services(run_dir: Path) -> list[int]:
    """PIDs of the `podman system service` processes listening on run_dir's socket (an operator's
    state dir is private to one test, so these are ours whoever their parent is now)."""
    socket = f"unix://{run_dir / 'podman.sock'}"
    return [
        p.pid
        for p in processes()
        if p.state not in ("Z", "X") and "system service" in p.cmdline and p.cmdline.endswith(socket)
    ]


def stop_podman_service(state_dir: Path) -> None:
    """Stop the Podman API service an operator with this state dir left behind (it outlives a
    SIGKILLed operator on purpose, and a restarted operator reuses it without owning it)."""
    for pid in podman_services(state_dir / "run"):
        stop(pid)


def wait_gone(procs: list[Proc], grace: float) -> list[Proc]:
    """The processes of `procs` still alive after up to `grace` seconds."""
    deadline = time.monotonic() + grace
    left = [p for p in procs if alive(p.pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p.pid)]
    return left


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in this mount namespace, deepest first (a leaked disk of a task)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # spaces come as \040
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)
