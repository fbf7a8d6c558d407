"""Out-of-memory evidence from a container's own memory cgroup, counted while the cgroup lives.

Podman's `State.OOMKilled` stays false here and the container's cgroup is removed (by `podman
container cleanup`) before `wait` returns, so its counters cannot be read afterwards. Instead, between
`init` (the cgroup exists, the program has not started) and `start`, an eventfd is registered for the
cgroup's OOM notifications (cgroup v1: `cgroup.event_control` on `memory.oom_control`, as conmon
does). The kernel signals it once per OOM in that cgroup and once more when the cgroup is removed. A
daemon thread reads it: a signal after which `memory.oom_control` can still be read is an OOM; a read
that fails (ENODEV) means the cgroup is gone, and a count above one at that moment means an OOM came
with the removal. So the verdict is exact whatever the thread's timing.

Where the memory cgroup is not reachable (cgroup v2, another mount namespace, not root), `OomWatch.start`
returns None and the caller keeps its other evidence (the kernel log).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")


def memory_cgroup(pid: int, proc: Path = Path("/proc"), root: Path = MEMORY_ROOT) -> Path | None:
    """The v1 memory cgroup directory of a process, or None when there is none to be seen."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            directory = root / path.lstrip("/")
            return directory if (directory / "memory.oom_control").is_file() else None
    return None


def container_cgroup(container_id: str, root: Path = MEMORY_ROOT) -> Path | None:
    """Where Podman's cgroupfs and systemd managers put a container's memory cgroup, if it is there."""
    for relative in (f"libpod_parent/libpod-{container_id}", f"machine.slice/libpod-{container_id}.scope"):
        directory = root / relative
        if (directory / "memory.oom_control").is_file():
            return directory
    return None


class OomWatch:
    """Counts the OOM notifications of one memory cgroup until it is removed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ooms = 0
        self._stop = False
        self._closed = False
        self._lock = threading.Lock()  # the fds are closed once, never written to after
        self._control = os.open(directory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._event = os.eventfd(0, os.EFD_CLOEXEC)
            try:
                (directory / "cgroup.event_control").write_text(f"{self._event} {self._control}")
            except OSError:
                os.close(self._event)
                raise
        except OSError:
            os.close(self._control)
            raise
        name = f"oom-watch-{directory.name[:20]}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, directory: Path | None) -> OomWatch | None:
        """Watch a memory cgroup (a container's, between `init` and `start`); None if it cannot be."""
        if directory is None:
            return None
        try:
            return cls(directory)
        except OSError:
            return None

    def _run(self) -> None:
        try:
            while not self._stop:
                count = os.eventfd_read(self._event)
                if self._stop:
                    return
                try:
                    os.pread(self._control, 4096, 0)
                except OSError:  # the cgroup is gone: that was one signal, any more were OOMs
                    self.ooms += count - 1
                    return
                self.ooms += count
        finally:
            with self._lock:
                self._closed = True
                os.close(self._control)
                os.close(self._event)

    def result(self, settle_s: float = 0.0) -> bool:
        """Whether the cgroup had an OOM; first wait up to `settle_s` for its removal to be seen."""
        if settle_s > 0:
            self._thread.join(settle_s)
        return self.ooms > 0

    def close(self) -> None:
        """Stop watching (the thread ends by itself once the cgroup is removed)."""
        with self._lock:
            if not self._closed:
                self._stop = True
                with contextlib.suppress(OSError):
                    os.eventfd_write(self._event, 1)


class Watches:
    """The OOM watches of the containers a runtime started, by container name (thread-safe enough:
    single dict operations under the GIL)."""

    def __init__(self) -> None:
        self._by_name: dict[str, OomWatch] = {}

    def add(self, name: str, directory: Path | None) -> None:
        watch = OomWatch.start(directory)
        if watch is not None:
            self._by_name[name] = watch

    def verdict(self, name: str, settle_s: float) -> bool | None:
        """Whether the named container had an OOM (None: it was not watched); ends its watch."""
        watch = self._by_name.pop(name, None)
        if watch is None:
            return None
        try:
            return watch.result(settle_s)
        finally:
            watch.close()

    def drop(self, name: str) -> None:
        watch = self._by_name.pop(name, None)
        if watch is not None:
            watch.close()
