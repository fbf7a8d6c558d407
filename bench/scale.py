"""Benchmark: the operator at scale on the local control plane (real etcd + kube-apiserver, real Podman).

Two shapes, one after the other, on one operator process:

- **big**: one sprint of TASKS (1,000) independent no-op tasks, SLOTS (5) at a time.
- **concurrent**: SPRINTS (20) sprints of SPRINT_TASKS (10) no-op tasks applied at once, each with
  CONCURRENT_SLOTS (1) slot (max_concurrent_sprints is SPRINTS), so at most 20 task containers run.

A no-op task is a demo-team task whose recipe folder is empty: the team runs in its container (a real
`podman run` per task: nothing is simulated; no gate container, as no task has testRequirements),
changes nothing, and `allowNoChanges: true` lets it complete without a merge. The first task of each
sprint has a one-file recipe, so every sprint merges one change, runs its integration step and moves
main (a sprint where nothing changed ends Failed).

Figures per shape: wall time from `kubectl apply` to every sprint ended, tasks per minute, API writes
per task (writes to sprints, tasks and events, from the kube-apiserver's apiserver_request_total), the
p99 of the apiserver's request latency for our resources (apiserver_request_duration_seconds, every verb
but WATCH, the histogram's delta over the shape), and the time from a slot freeing to the next
admission (median, p95): a task's slot frees when it leaves Running/Gating/Merging (its completionTime,
written by the operator) and the next task's startTime is its admission, both stamped by the operator's
clock; the k-th admission after the first SLOTS fills the k-th freed slot. Operator RSS: its peak
(VmHWM) and the largest VmRSS sampled every 0.2 s.

    .venv/bin/python bench/scale.py [--tasks N] [--sprints N] [--sprint-tasks N] [--slots N]

Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "bench"))

from _baseline import IMAGE, sh  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402

TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")
GROUP = "sprintorchestrator.dev"
WRITE = re.compile(
    r'apiserver_request_total\{([^}]*resource="(?:sprints|tasks|events)"[^}]*verb="(?:POST|PUT|PATCH|DELETE)"[^}]*)\}'
    r" (\d+)"
)
LABEL = re.compile(r'(\w+)="([^"]*)"')
BUCKET = re.compile(r"apiserver_request_duration_seconds_bucket\{([^}]*)\} (\d+)")


def metrics(local: LocalCluster) -> str:
    pki = local.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    server = json.loads((local.state_dir / "state.json").read_text())["server"]
    with urllib.request.urlopen(f"{server}/metrics", context=ctx, timeout=30) as resp:
        return str(resp.read().decode())


def writes_of(text: str) -> dict[str, int]:
    """Writes to our resources and Events, by "resource[/subresource] VERB" (every client's)."""
    out: dict[str, int] = {}
    for match in WRITE.finditer(text):
        labels = dict(LABEL.findall(match.group(1)))
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        key = f"{labels['resource']}{sub} {labels['verb']}"
        out[key] = out.get(key, 0) + int(match.group(2))
    return out


def buckets_of(text: str) -> dict[float, int]:
    """Cumulative request counts per latency bound, for our resources' requests (no WATCH)."""
    out: dict[float, int] = {}
    for match in BUCKET.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("group") != GROUP or labels.get("verb") in ("WATCH", "CONNECT"):
            continue
        bound = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        out[bound] = out.get(bound, 0) + int(match.group(2))
    return out


def quantile(before: dict[float, int], after: dict[float, int], q: float) -> float | None:
    """The q-quantile of the requests between two snapshots (linear within a bucket, as PromQL)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    if not counts or counts[-1] == 0:
        return None
    rank, lower, below = q * counts[-1], 0.0, 0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1)
        lower, below = bound, count
    return lower


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def handoffs(tasks: list[dict[str, Any]], slots: int) -> list[float]:
    """Seconds from each freed slot to the admission that filled it, in one sprint of independent
    tasks: the k-th admission after the first `slots` follows the k-th completion."""
    starts = sorted(when(t["status"]["startTime"]) for t in tasks)
    frees = sorted(when(t["status"]["completionTime"]) for t in tasks)
    return [(start - free).total_seconds() for start, free in zip(starts[slots:], frees, strict=False)]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()

    def field(self, name: str) -> int:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        found = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
        return int(found.group(1)) if found else 0

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak_kb = max(self.peak_kb, self.field("VmRSS"))


class Scale:
    def __init__(self, tmp: Path, local: LocalCluster, args: argparse.Namespace) -> None:
        self.tmp, self.local, self.args = tmp, local, args
        self.kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig)]
        self.bare = self.seed()

    def seed(self) -> Path:
        work = self.tmp / "seed"
        work.mkdir()
        (work / "README.md").write_text("bench\n")
        sh("git", "init", "-q", "-b", "main", cwd=work)
        sh("git", "add", "-A", cwd=work)
        sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init", cwd=work)
        bare = self.tmp / "target.git"
        sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
        sh("git", "push", "-q", str(bare), "main", cwd=work)
        return bare

    def manifest(self, name: str, count: int, slots: int) -> dict[str, Any]:
        recipes = self.tmp / f"recipes-{name}"
        for i in range(count):
            (recipes / f"t{i:04d}").mkdir(parents=True)  # empty: the team changes nothing
        (recipes / "t0000" / "files" / f"{name}.txt").parent.mkdir(parents=True)
        (recipes / "t0000" / "files" / f"{name}.txt").write_text(f"{name}\n")
        tasks = [
            {
                "id": f"t{i:04d}",
                "title": f"no-op {i}",
                "filesToModify": [f"files/{name}.txt"] if i == 0 else [],
                **({} if i == 0 else {"allowNoChanges": True}),
            }
            for i in range(count)
        ]
        return {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "Sprint",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "repository": {"url": str(self.bare)},
                "team": {"type": "demo", "recipes": str(recipes)},
                "maxParallelTasks": slots,
                # The demo team reports ~1,500 tokens a task: the default budget (1,000,000) would stop
                # a 1,000-task sprint at about two thirds.
                "tokenBudget": max(1_000_000, 5_000 * count),
                "tasks": tasks,
            },
        }

    def get(self, *args: str) -> Any:
        return json.loads(sh(*self.kubectl, "get", *args, "-o", "json"))

    def shape(self, sprints: dict[str, int], slots: int) -> dict[str, Any]:
        """Apply the sprints (name -> task count) at once; wait until every one has ended."""
        manifests = [self.manifest(name, count, slots) for name, count in sprints.items()]
        before = metrics(self.local)
        started = time.perf_counter()
        for manifest in manifests:
            sh(*self.kubectl, "apply", "--server-side", "-f", "-", input=json.dumps(manifest))
        deadline = time.monotonic() + self.args.timeout
        while True:
            items = self.get("sprints", "-n", "default")["items"]
            phases = {s["metadata"]["name"]: (s.get("status") or {}).get("phase") for s in items}
            if all(phases.get(name) in TERMINAL for name in sprints):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"sprints not ended after {self.args.timeout} s: {phases}")
            time.sleep(0.5)
        wall = time.perf_counter() - started
        after = metrics(self.local)
        gaps: list[float] = []
        completed = 0
        for name in sprints:
            tasks = self.get("stask", "-n", "default", "-l", f"{GROUP}/sprint={name}")["items"]
            completed += sum(1 for t in tasks if (t.get("status") or {}).get("phase") == "Completed")
            gaps += handoffs(tasks, slots)
            sh(*self.kubectl, "delete", "sprint", name, "-n", "default", "--wait=false")
        total = sum(sprints.values())
        latency = quantile(buckets_of(before), buckets_of(after), 0.99)
        was = writes_of(before)
        writes = {key: count - was.get(key, 0) for key, count in writes_of(after).items()}
        return {
            "tasks": total,
            "completed": completed,
            "phases": sorted({str(phases.get(n)) for n in sprints}),
            "wall_s": round(wall, 2),
            "tasks_per_minute": round(total / wall * 60, 1),
            "api_writes_per_task": round(sum(writes.values()) / total, 2),
            "api_writes_per_task_by_kind": {k: round(v / total, 2) for k, v in sorted(writes.items()) if v},
            "apiserver_p99_s": None if latency is None else round(latency, 4),
            "handoff_median_ms": round(statistics.median(gaps) * 1000, 1) if gaps else None,
            "handoff_p95_ms": round(p95(gaps) * 1000, 1) if len(gaps) > 1 else None,
            "handoffs": len(gaps),
        }


def start_operator(tmp: Path, local: LocalCluster, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    config = tmp / "config.yaml"
    config.write_text(
        f"orchestrator: {{max_parallel_tasks_per_sprint: {args.slots}, "
        f"max_concurrent_sprints: {max(args.sprints, 1)}, allowed_host_paths: ['{tmp}']}}\n"
        f"git: {{working_trees_path: '{tmp / 'trees'}'}}\n"
        f"containers: {{base_image: {IMAGE}}}\n"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(local.kubeconfig),
        "SPRINT_ORCHESTRATOR_CONFIG": str(config),
        "SPRINT_ORCHESTRATOR_STATE_DIR": str(tmp / "state"),
    }
    sprintctl = str(Path(sys.executable).parent / "sprintctl")
    with open(tmp / "operator.log", "wb") as log:
        return subprocess.Popen(
            [sprintctl, "operator", "--namespace", "default"], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def run(tmp: Path, local: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    scale = Scale(tmp, local, args)
    local.apply_crds(REPO / "crds")
    operator = start_operator(tmp, local, args)
    sampler = RssSampler(operator.pid)
    sampler.start()
    figures: dict[str, Any] = {}
    try:
        if args.tasks:
            figures["big"] = scale.shape({"big": args.tasks}, args.slots)
            figures["big"]["operator_rss_mb"] = round(sampler.peak_kb / 1024, 1)
            log(f"big: {figures['big']}")
        if args.sprints:
            names = {f"c{i:02d}": args.sprint_tasks for i in range(args.sprints)}
            figures["concurrent"] = scale.shape(names, args.concurrent_slots)
            log(f"concurrent: {figures['concurrent']}")
        figures["operator_rss_peak_mb"] = round(sampler.field("VmHWM") / 1024, 1)
        figures["operator_rss_sampled_peak_mb"] = round(sampler.peak_kb / 1024, 1)
    finally:
        sampler.done.set()
        operator.terminate()
        operator.wait(timeout=60)
    figures["runtime"] = "podman: one real container per task, no gate containers"
    figures["slots"] = {"big": args.slots, "concurrent_per_sprint": args.concurrent_slots}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks of the big sprint (0: skip it)")
    parser.add_argument("--sprints", type=int, default=20, help="concurrent sprints (0: skip them)")
    parser.add_argument("--sprint-tasks", type=int, default=10, help="tasks of each concurrent sprint")
    parser.add_argument("--slots", type=int, default=5, help="maxParallelTasks of the big sprint")
    parser.add_argument("--concurrent-slots", type=int, default=1, help="maxParallelTasks of the others")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per shape")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and operator are stopped
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster")
        local.up()
        try:
            figures = run(tmp, local, args)
        finally:
            local.down()
    print(json.dumps(figures))
    return 0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
