"""Benchmark: fail-over between two operator replicas that share a state directory and one Lease.

The local control plane, the operator as two real processes (`SPRINT_ORCHESTRATOR_LEASE_*` set, as the
chart sets it), real git and Podman running the demo team. Each round: a standby starts and waits for
the Lease; a sprint runs under the holder with its first task held running; the holder is paused
(SIGSTOP, as a node that stops answering) past its Lease; the standby takes the Lease, adopts the held
task's container and finishes the sprint; the paused one is woken (SIGCONT) and must stand down without
moving a ref. The next round's standby is a new process; the old standby is now the holder.

Figures: per round, the fail-over time (the pause -> the standby holds the Lease), the time to the
first phase change after the pause (the standby at work), each sprint's phase, the ref moves the woken
replica made after its pause (goal 0), whether it stood down; medians and the maximum.

    .venv/bin/python bench/failover.py [--rounds 5] [--lease-seconds 6]

Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for extra in ("hack", "tests", "tests/chaos"):
    sys.path.insert(0, str(REPO / extra))

from recorder import Recorder  # noqa: E402

from _e2e import apply, demo_sprint, recipe, start_operator, stop_operator, wait_for  # noqa: E402
from localcluster import ClusterError, LocalCluster  # noqa: E402
from sprint_orchestrator.kube import Kube  # noqa: E402
from test_lifecycle_e2e import by_id, config, held_while, hold, seed_repository, wait_terminal  # noqa: E402

NAMESPACE = "failover"
Operator = tuple[subprocess.Popen[bytes], Path]  # an operator process and its log


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def holder(local: LocalCluster) -> str:
    try:
        out = local.kubectl("get", "lease", "sprint-orchestrator", "-n", NAMESPACE, "-o", "json")
        return str(json.loads(out)["spec"].get("holderIdentity") or "")
    except (ClusterError, ValueError, KeyError):
        return ""


def ref_moves_after(oplog: Path, moment: dt.datetime) -> int:
    moves = 0
    for line in oplog.read_text(errors="replace").splitlines():
        if '"git_ref"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            moves += dt.datetime.fromisoformat(record["timestamp"]) > moment
    return moves


def sprint(name: str, repo: Path, recipes: Path) -> dict[str, Any]:
    """`first` (held running until released), then `second` after it; an integration test. Each
    round's files are its own (the same content again would be no change)."""
    first, second = f"out/{name}/first.txt", f"out/{name}/second.txt"
    recipe(recipes, "first", first)
    recipe(recipes, "second", second)
    tasks = [
        {
            "id": "first",
            "title": "first",
            "filesToModify": [first],
            "testRequirements": [held_while("first")],
        },
        {"id": "second", "title": "second", "filesToModify": [second], "dependencies": ["first"]},
    ]  # fmt: skip
    return dict(
        demo_sprint(name, repo, recipes, tasks, integrationTests=[f"test -s {first} && test -s {second}"])
    )


def one_round(
    local: LocalCluster,
    name: str,
    repo: Path,
    tmp: Path,
    recorder: Recorder,
    replicas: tuple[Operator, Operator],
) -> dict[str, Any]:
    """Pause the holder while a sprint's task runs; the standby takes over; the holder is woken."""
    (leader, leader_log), (standby, standby_log) = replicas
    wait_for(lambda: "waiting for the Lease" in standby_log.read_text(), what="the standby waiting")
    recipes = tmp / "recipes" / name  # its own: the hold file and the files of this round only
    released = hold(recipes, "first")
    apply(local, NAMESPACE, sprint(name, repo, recipes))
    wait_for(
        lambda: by_id(local, NAMESPACE, name).get("first", {}).get("containerHealth") == "running",
        timeout=300,
        what="the held task running",
    )
    paused_at = dt.datetime.now(dt.UTC)
    began = time.monotonic()
    os.kill(leader.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: f"-{standby.pid}-" in holder(local), timeout=180, what="the standby's Lease")
        failover = time.monotonic() - began
        released.unlink()
        status = wait_terminal(local, NAMESPACE, name, timeout=600)
    finally:
        os.kill(leader.pid, signal.SIGCONT)
    try:
        stood_down = leader.wait(timeout=120) is not None
    except subprocess.TimeoutExpired:
        stood_down = False
    progress = recorder.progress_after(began)
    return {
        "failover_s": round(failover, 2),
        "first_phase_change_after_pause_s": round(progress - began, 2) if progress else None,
        "sprint_phase": status.get("phase"),
        "woken_ref_moves": ref_moves_after(leader_log, paused_at),
        "stood_down": stood_down and "stands down" in leader_log.read_text(),
    }


def run(tmp: Path, local: LocalCluster, rounds: int, lease_seconds: int) -> dict[str, Any]:
    local.apply_crds(REPO / "crds")
    local.kubectl("create", "namespace", NAMESPACE)
    repo = seed_repository(tmp, files={"README.md": "x\n"})
    env = {
        **config(tmp),
        "SPRINT_ORCHESTRATOR_LEASE_NAMESPACE": NAMESPACE,
        "SPRINT_ORCHESTRATOR_LEASE_SECONDS": str(lease_seconds),
    }
    state = tmp / "state"
    kube = Kube.from_kubeconfig(str(local.kubeconfig))
    recorder = Recorder(kube, NAMESPACE).__enter__()
    logs = iter(tmp / f"op-{i}.log" for i in range(rounds + 2))
    leader_log = next(logs)
    leader = start_operator(local, NAMESPACE, state, leader_log, **env)
    started = [leader]  # every replica, stopped at the end even when a round fails half-way
    results: list[dict[str, Any]] = []
    try:
        wait_for(lambda: f"-{leader.pid}-" in holder(local), timeout=120, what="the first Lease")
        for number in range(1, rounds + 1):
            standby_log = next(logs)
            standby = start_operator(local, NAMESPACE, state, standby_log, **env)
            started.append(standby)
            pair = ((leader, leader_log), (standby, standby_log))
            results.append(one_round(local, f"round-{number}", repo, tmp, recorder, pair))
            log(f"round {number}: {results[-1]}")
            if leader.poll() is None:  # it did not stand down: stopped (the Podman service goes with it)
                stop_operator(leader)
            leader, leader_log = standby, standby_log
    finally:
        for proc in started:
            if proc.poll() is None:
                stop_operator(proc)
        recorder.stop()
        kube.close()
    failovers = [r["failover_s"] for r in results]
    return {
        "rounds": len(results),
        "lease_seconds": lease_seconds,
        "failover_median_s": round(statistics.median(failovers), 2),
        "failover_max_s": max(failovers),
        "sprints_completed": sum(r["sprint_phase"] == "Completed" for r in results),
        "woken_ref_moves": sum(r["woken_ref_moves"] for r in results),
        "stood_down": sum(bool(r["stood_down"]) for r in results),
        "per_round": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="pauses of the Lease holder (default 5)")
    parser.add_argument("--lease-seconds", type=int, default=6, help="the Lease's duration (default 6)")
    args = parser.parse_args()
    if args.rounds < 1 or args.lease_seconds < 2:
        parser.error("--rounds must be at least 1 and --lease-seconds at least 2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and operators are stopped
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster")
        local.up()
        try:
            figures = run(tmp, local, args.rounds, args.lease_seconds)
        finally:
            local.down()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
