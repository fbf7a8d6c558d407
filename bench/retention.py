"""Benchmark: disk use over many sprints back to back, with the retention policy and without it.

Two operators on one local control plane (real etcd + kube-apiserver, real Podman), each with its own
namespace, state directory, trees directory and target repository: one with `retention: {keep_sprints:
KEEP}` (the other retention settings at their defaults: loose objects packed past 250, a full git gc
past 10 packs, unreachable objects pruned an hour old), one with `retention: {enabled: false,
git_maintenance: false}`, the baseline. Sprint i goes to both at once, the same work: TASKS demo-team
tasks, each rewriting one file (so the repository grows only by the sprint reports). The next pair
starts when both ended and the retention run after the first's end has posted its Event. The disk
blocks in use (du's count, no link followed) of each operator's state and trees directories are read
after every EVERY sprints.

    PATH=$PWD/hack/bin:$PATH CONTAINERS_CONF=$PWD/hack/containers.conf \\
        .venv/bin/python bench/retention.py [--sprints 50] [--keep 10] [--tasks 3] [--every 10]

Last line: one JSON object: {"sprints", "keep", "tasks", "after": [sprint counts], "with_policy_bytes":
[...], "without_policy_bytes": [...], "with_policy_clone_bytes": [...], "without_policy_clone_bytes":
[...], "growth_per_sprint_after_window": {"with", "without"}, "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "bench"))

from _baseline import IMAGE, sh  # noqa: E402
from _sprints import TERMINAL, Bench, log, start_operator, stop_operator  # noqa: E402
from _sprints import sprint_manifest as manifest_of  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402
from sprint_orchestrator.prunefs import size  # noqa: E402


def disk_bytes(*roots: Path) -> int:
    """The disk blocks in use under `roots` (du's count), no link followed."""
    return sum(size(root) for root in roots)


class Side:
    """One operator, its namespace and repository."""

    def __init__(self, tmp: Path, local: LocalCluster, name: str, retention: str) -> None:
        self.tmp, self.name = tmp / name, name
        self.tmp.mkdir()
        self.bench = Bench(self.tmp, local, namespace=name, repo="target")
        sh(*self.bench.kubectl, "create", "namespace", name)
        self.trees = self.tmp / "trees"
        self.operator = start_operator(
            self.tmp, local,
            f"orchestrator: {{max_concurrent_sprints: 2, allowed_host_paths: ['{tmp}']}}\n"
            f"git: {{working_trees_path: '{self.trees}'}}\n"
            f"containers: {{base_image: {IMAGE}}}\n"
            f"retention: {retention}\n",
            namespace=name,
        )  # fmt: skip
        self.state = self.tmp / "operator-state"
        self.events = client.CoreV1Api(self.bench.api)

    def apply(self, sprint: str, tasks: int) -> None:
        recipes = self.tmp / f"recipes-{sprint}"
        for i in range(tasks):  # task tNN rewrites files/tNN.txt: the repository keeps its size
            target = recipes / f"t{i:02d}" / "files" / f"t{i:02d}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"sprint {sprint}, task {i}\n")
        body = manifest_of(sprint, self.bench.bare, recipes, False, tasks, tasks, self.name)
        for task in body["spec"]["tasks"]:
            task["filesToModify"] = [f"files/{task['id']}.txt"]
            task["testRequirements"] = [f"test -s files/{task['id']}.txt"]
        subprocess.run(
            [*self.bench.kubectl, "apply", "-f", "-"], input=json.dumps(body), text=True, check=True,
            capture_output=True,
        )  # fmt: skip

    def ended(self, sprint: str) -> bool:
        phase = self.bench.phase(sprint)
        if phase in TERMINAL and phase != "Completed":
            raise SystemExit(f"{self.name}: sprint {sprint} ended {phase}: {self.bench.status(sprint)}")
        return phase == "Completed"

    def retained(self, sprint: str) -> bool:
        selector = f"involvedObject.name={sprint},reason=Retention"
        return bool(self.events.list_namespaced_event(self.name, field_selector=selector).items)

    def bytes(self) -> tuple[int, int]:
        clone = disk_bytes(*self.trees.glob("*/repo.git"))
        return disk_bytes(self.state, self.trees), clone

    def close(self) -> None:
        stop_operator(self.operator)
        self.bench.close()


def wait(check: Any, what: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.25)


def run(tmp: Path, local: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig)]
    sh(*kubectl, "apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("sprints", "tasks"):
        sh(*kubectl, "wait", "--for=condition=Established", f"crd/{crd}.sprintorchestrator.dev")
    policy = Side(tmp, local, "with-policy", f"{{keep_sprints: {args.keep}}}")
    baseline = Side(tmp, local, "without-policy", "{enabled: false, git_maintenance: false}")
    after: list[int] = []
    sizes: dict[str, list[int]] = {"with": [], "without": [], "with_clone": [], "without_clone": []}
    started = time.perf_counter()
    try:
        for i in range(1, args.sprints + 1):
            name = f"s{i:03d}"
            for side in (policy, baseline):
                side.apply(name, args.tasks)
            wait(lambda n=name: policy.ended(n) and baseline.ended(n), f"sprint {name}")
            wait(lambda n=name: policy.retained(n), f"the retention run after {name}", 300)
            if i % args.every == 0 or i == args.sprints:
                (with_all, with_clone), (without_all, without_clone) = policy.bytes(), baseline.bytes()
                after.append(i)
                sizes["with"].append(with_all)
                sizes["without"].append(without_all)
                sizes["with_clone"].append(with_clone)
                sizes["without_clone"].append(without_clone)
                log(f"after {i} sprints: with the policy {with_all} bytes, without {without_all}")
    finally:
        policy.close()
        baseline.close()
    return figures(args, after, sizes, time.perf_counter() - started)


def figures(
    args: argparse.Namespace, after: list[int], sizes: dict[str, list[int]], wall: float
) -> dict[str, Any]:
    growth = {}
    full = [k for k, n in enumerate(after) if n > args.keep]  # measures past the policy window
    for side in ("with", "without"):
        if len(full) >= 2:
            first, last = full[0], full[-1]
            growth[side] = round((sizes[side][last] - sizes[side][first]) / (after[last] - after[first]))
    return {
        "sprints": args.sprints,
        "keep": args.keep,
        "tasks": args.tasks,
        "after": after,
        "with_policy_bytes": sizes["with"],
        "without_policy_bytes": sizes["without"],
        "with_policy_clone_bytes": sizes["with_clone"],
        "without_policy_clone_bytes": sizes["without_clone"],
        "growth_per_sprint_after_window": growth,
        "seconds": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sprints", type=int, default=50)
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and operators are stopped
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster")
        local.up()
        try:
            result = run(tmp, local, args)
        finally:
            local.down()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
