"""One chaos run: a target repository that keeps a reflog of main, the operator as a real process (its
TMPDIR inside its state dir, so temporary files it leaves are found), a Recorder of every phase change,
and at the end the invariant checker on everything the run touched."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from invariants import assert_invariants, collect
from recorder import Recorder

from _e2e import start_operator, stop_operator
from localcluster import LocalCluster
from sprint_orchestrator.kube import Kube
from test_lifecycle_e2e import config, seed_repository


class ChaosRun:
    def __init__(self, cluster: LocalCluster, namespace: str, tmp: Path, repo: Path | None = None) -> None:
        self.cluster, self.namespace, self.tmp = cluster, namespace, tmp
        self.repo = repo or seed_repository(tmp, files={"README.md": "x\n"})
        git(self.repo, "config", "core.logAllRefUpdates", "always")  # every move of main, for the checker
        self.base_main = git(self.repo, "rev-parse", "main")
        self.state = tmp / "state"
        (self.state / "tmp").mkdir(parents=True, exist_ok=True)
        self.log = tmp / "op.log"
        self.env = {**config(tmp), "TMPDIR": str(self.state / "tmp")}
        self.kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
        self.recorder = Recorder(self.kube, namespace).__enter__()
        self.proc: subprocess.Popen[bytes] | None = None
        self.deleted: set[str] = set()
        self.logs = [self.log]  # every operator log of the run (a second replica adds its own)

    def start(self, faults: str = "") -> subprocess.Popen[bytes]:
        extra = {**self.env, **({"SPRINT_ORCHESTRATOR_FAULTS": faults} if faults else {})}
        self.proc = start_operator(self.cluster, self.namespace, self.state, self.log, **extra)
        return self.proc

    def killed_at_fault(self, timeout: float = 300) -> None:
        """The operator ran into its armed fault point: it died by SIGKILL (not by an error of its own)."""
        assert self.proc is not None
        assert self.proc.wait(timeout=timeout) == -signal.SIGKILL, "the operator did not die at its fault"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_operator(self.proc, sig)
            self.proc = None

    def world(self, foreign: tuple[str, ...] = ()) -> Any:
        return collect(
            self.kube,
            self.namespace,
            self.repo,
            self.state,
            self.logs,
            self.base_main,
            trees_dir=self.tmp / "trees",
            recorder=self.recorder,
            foreign=foreign,
            deleted=self.deleted,
        )

    def finish(self, foreign: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> None:
        """Stop the operator (as an operator ends: SIGTERM), stop recording, check every invariant."""
        try:
            self.stop()
        finally:
            self.recorder.stop()
        assert_invariants(self.world(foreign), skip)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.recorder.stop()
            self.kube.close()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()
