"""One active replica: two operators share a state dir and a Lease (lease.py). The holder is paused
(SIGSTOP) past its Lease; the standby takes it over and finishes the sprint; the woken one moves no ref,
writes nothing and stands down. Real control plane, real git, real Podman; waits on state only."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _chaos import ChaosRun
from test_chaos_windows import pair_sprint

from _e2e import apply, start_operator, stop_operator, wait_for
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator import lease
from sprint_orchestrator.kube import Kube
from test_lifecycle_e2e import by_id, held_while, hold, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
LEASE_SECONDS = 6


@pytest.fixture
def run(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[ChaosRun]:
    chaos = ChaosRun(cluster, namespace, tmp_path)
    chaos.env.update(
        SPRINT_ORCHESTRATOR_LEASE_NAMESPACE=namespace, SPRINT_ORCHESTRATOR_LEASE_SECONDS=str(LEASE_SECONDS)
    )
    try:
        yield chaos
    finally:
        chaos.close()


def holder(cluster: LocalCluster, namespace: str) -> str:
    out = kubectl(cluster, "get", "lease", "sprint-orchestrator", "-n", namespace, "-o", "json", check=False)
    try:
        return str(json.loads(out)["spec"].get("holderIdentity") or "")
    except (ValueError, KeyError):
        return ""


def ref_moves_after(log: Path, moment: dt.datetime) -> list[dict[str, Any]]:
    moves = []
    for line in log.read_text(errors="replace").splitlines():
        if '"git_ref"' in line:
            record = json.loads(line)
            if dt.datetime.fromisoformat(record["timestamp"]) > moment:
                moves.append(record)
    return moves


@pytest.mark.operator_errors(r"does not hold a live Lease", r"NotLeader")
def test_a_paused_operator_loses_its_lease_to_the_standby_which_finishes_the_sprint_and_it_stands_down(
    run: ChaosRun,
) -> None:
    first = run.start()
    wait_for(
        lambda: f"-{first.pid}-" in holder(run.cluster, run.namespace), what="the first operator's Lease"
    )
    standby_log = run.tmp / "op-standby.log"
    run.logs.append(standby_log)
    standby = start_operator(run.cluster, run.namespace, run.state, standby_log, **run.env)
    try:
        wait_for(lambda: "waiting for the Lease" in standby_log.read_text(), what="the standby to wait")
        manifest = pair_sprint("failover", run.repo, run.tmp / "r")
        manifest["spec"]["tasks"][0]["testRequirements"] = [held_while("first")]
        held = hold(run.tmp / "r", "first")
        apply(run.cluster, run.namespace, manifest)
        wait_for(
            lambda: (
                by_id(run.cluster, run.namespace, "failover").get("first", {}).get("containerHealth")
                == "running"
            ),
            timeout=300,
            what="the first task running under the first operator",
        )
        paused_at = dt.datetime.now(dt.UTC)
        started = time.monotonic()
        os.kill(first.pid, signal.SIGSTOP)
        try:
            wait_for(
                lambda: f"-{standby.pid}-" in holder(run.cluster, run.namespace),
                timeout=120,
                what="the standby to take the Lease",
            )
            failover = time.monotonic() - started
            print(f"fail-over: the standby held the Lease {failover:.1f}s after the pause", file=sys.stderr)
            (run.tmp / "failover-seconds").write_text(f"{failover:.2f}\n")
            held.unlink()  # the task finishes; the standby adopts its container and goes on
            status = wait_terminal(run.cluster, run.namespace, "failover", timeout=600)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=120) is not None  # woken, it found the Lease taken and stood down
        assert status["phase"] == "Completed", status.get("message")
        assert ref_moves_after(run.log, paused_at) == []  # the paused one moved no ref after its pause
        assert ref_moves_after(standby_log, paused_at)  # the standby did the rest
        assert "stands down" in run.log.read_text()
    finally:
        stop_operator(standby)
    run.finish()


@pytest.fixture
def installed() -> Iterator[None]:
    yield
    lease.install(None)


def test_the_fence_lets_only_the_holder_of_a_live_lease_act(
    cluster: LocalCluster, namespace: str, installed: None
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    try:
        first, second = lease.LeaseKeeper(kube, namespace, 30), lease.LeaseKeeper(kube, namespace, 30)
        lease.install(first)
        with pytest.raises(lease.NotLeader, match="does not hold a live Lease"):
            lease.fence()  # not taken yet
        assert first.try_hold()
        lease.fence()
        assert not second.try_hold()  # held and live: the standby waits
        assert f"-{os.getpid()}-" in holder(cluster, namespace)
        first._valid_until = 0.0  # as after a pause longer than the lease
        with pytest.raises(lease.NotLeader):
            lease.fence()
        with pytest.raises(lease.NotLeader):  # and so is every write of the Kube adapter
            kube.event(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": namespace}},
                "R",
                "m",
            )
    finally:
        kube.close()
