"""Benchmark: sprints of demo-team tasks on the local control plane, beside the same work done by hand.

Every task makes a real change: the demo team (examples/demo-team's kind, team.type demo) writes one
file from its recipe, so the operator commits it, runs its quality gate (`test -s FILE` in a fresh
container) and merges it. The baseline does the same work with the raw primitives: `git worktree add`,
`podman run` of the same demo team on the same image, `git commit`, `podman run` of the gate, `git merge`
(one at a time, as the operator merges), `git worktree remove`. The two are interleaved, round after
round, so both see the same machine load:

    baseline, SLOTS at a time -> sprint of TASKS independent tasks (maxParallelTasks SLOTS)
    -> baseline, one at a time -> sprint of a TASKS-task chain (each task depends on the previous)

Figures: the median task time in the sprints (admitted -> merged, from the Tasks' status) against the
median baseline task at the same parallelism (overhead_ratio) and one at a time
(overhead_ratio_vs_serial); the wall time from `kubectl apply` to main moved for the independent
sprint and the chain, beside the baseline's wall time for the same tasks; slot utilization; Kubernetes
API writes per task (the kube-apiserver's own request counters).

Last line: one JSON object of figures. BENCH_ROUNDS (2), BENCH_TASKS (10), BENCH_SLOTS (5).
"""

from __future__ import annotations

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
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "bench"))

from _baseline import IMAGE, Baseline, sh  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TASKS = int(os.environ.get("BENCH_TASKS", "10"))
SLOTS = int(os.environ.get("BENCH_SLOTS", "5"))
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")
WRITE = re.compile(
    r'apiserver_request_total\{[^}]*resource="(sprints|tasks|events)"[^}]*verb="(POST|PUT|PATCH|DELETE)"[^}]*\}'
    r" (\d+)"
)


def apiserver_writes(local: LocalCluster) -> int:
    """Writes to sprints, tasks and events so far, from the kube-apiserver's own /metrics."""
    pki = local.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    server = json.loads((local.state_dir / "state.json").read_text())["server"]
    with urllib.request.urlopen(f"{server}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    return sum(int(m.group(3)) for m in WRITE.finditer(text))


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def sprint_manifest(name: str, bare: Path, recipes: Path, chain: bool) -> dict[str, Any]:
    tasks = [
        {
            "id": f"t{i:02d}",
            "title": f"write file {i}",
            "filesToModify": [f"files/{name}/t{i:02d}.txt"],
            "testRequirements": [f"test -s files/{name}/t{i:02d}.txt"],
            "dependencies": [f"t{i - 1:02d}"] if chain and i else [],
        }
        for i in range(TASKS)
    ]
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "repository": {"url": str(bare)},
            "team": {"type": "demo", "recipes": str(recipes)},
            "maxParallelTasks": SLOTS,
            "tasks": tasks,
        },
    }


def write_recipes(recipes: Path, prefix: str) -> None:
    """Task tNN writes {prefix}tNN.txt (a new file: a real change to commit, gate and merge)."""
    for i in range(TASKS):
        target = recipes / f"t{i:02d}" / f"{prefix}t{i:02d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"task {i}\n")


class Bench:
    def __init__(self, tmp: Path, local: LocalCluster) -> None:
        self.tmp, self.local = tmp, local
        self.kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig)]
        self.bare = self.seed("target")  # one repository: the operator keeps one clone per trees path

    def seed(self, name: str) -> Path:
        work = self.tmp / f"seed-{name}"
        work.mkdir()
        (work / "README.md").write_text("bench\n")
        sh("git", "init", "-q", "-b", "main", cwd=work)
        sh("git", "add", "-A", cwd=work)
        sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init", cwd=work)
        bare = self.tmp / f"{name}.git"
        sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
        sh("git", "push", "-q", str(bare), "main", cwd=work)
        return bare

    def sprint(self, name: str, chain: bool) -> dict[str, Any]:
        """Apply one sprint; wall time from the apply to main moved; its Tasks' spans."""
        recipes = self.tmp / f"recipes-{name}"
        write_recipes(recipes, f"files/{name}/")
        before = sh("git", "--git-dir", str(self.bare), "rev-parse", "main").strip()
        manifest = sprint_manifest(name, self.bare, recipes, chain)
        started = time.perf_counter()
        subprocess.run(
            [*self.kubectl, "apply", "-f", "-"], input=json.dumps(manifest), text=True, check=True,
            capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 1800
        while True:
            ended = self.phase(name) in TERMINAL  # read before main: main moves before the phase
            if sh("git", "--git-dir", str(self.bare), "rev-parse", "main").strip() != before:
                break
            if ended:
                raise SystemExit(f"sprint {name} ended without moving main: {self.status(name)['message']}")
            if time.monotonic() > deadline:
                raise SystemExit(f"sprint {name}: main did not move in 30 minutes")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        while (phase := self.phase(name)) not in TERMINAL:
            time.sleep(0.2)
        label = f"sprintorchestrator.dev/sprint={name}"
        tasks = json.loads(sh(*self.kubectl, "get", "stask", "-l", label, "-o", "json"))["items"]
        spans = [(when(t["status"]["startTime"]), when(t["status"]["completionTime"])) for t in tasks]
        return {"wall": wall, "spans": spans, "phase": phase}

    def status(self, name: str) -> dict[str, Any]:
        sprint = json.loads(sh(*self.kubectl, "get", "sprint", name, "-o", "json"))
        return dict(sprint.get("status") or {})

    def phase(self, name: str) -> str:
        return str(self.status(name).get("phase") or "")


def occupied_seconds(spans: list[tuple[dt.datetime, dt.datetime]]) -> float:
    """Slot-seconds in use: at each instant min(tasks admitted and not yet merged, SLOTS) (a task
    waiting in the merge queue no longer holds a slot, so more than SLOTS can be in flight)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    total, active, last = 0.0, 0, events[0][0]
    for moment, step in events:
        total += min(active, SLOTS) * (moment - last).total_seconds()
        active, last = active + step, moment
    return total


def span_figures(runs: list[dict[str, Any]]) -> tuple[float, float]:
    """(median task seconds, slot utilization) over the independent sprints."""
    durations, busy, capacity = [], 0.0, 0.0
    for run in runs:
        spans = run["spans"]
        durations += [(e - s).total_seconds() for s, e in spans]
        busy += occupied_seconds(spans)
        capacity += SLOTS * (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds()
    return statistics.median(durations), busy / capacity


def start_operator(tmp: Path, local: LocalCluster) -> subprocess.Popen[bytes]:
    config = tmp / "config.yaml"
    config.write_text(
        f"orchestrator: {{max_parallel_tasks_per_sprint: {SLOTS}, allowed_host_paths: ['{tmp}']}}\n"
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


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and operator are stopped
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    with tempfile.TemporaryDirectory(prefix="bench-sprint-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster")
        local.up()
        try:
            figures = run(tmp, local)
        finally:
            local.down()
    print(json.dumps(figures))
    return 0


def run(tmp: Path, local: LocalCluster) -> dict[str, Any]:
    bench = Bench(tmp, local)
    sh(*bench.kubectl, "apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("sprints", "tasks"):
        sh(*bench.kubectl, "wait", "--for=condition=Established", f"crd/{crd}.sprintorchestrator.dev")
    write_recipes(tmp / "recipes-baseline", "files/")
    baseline = Baseline(tmp / "baseline", tmp / "recipes-baseline", bench.seed("baseline"))
    operator = start_operator(tmp, local)
    wide, chains, parallel, serial = [], [], [], []
    writes = 0
    try:
        for r in range(ROUNDS):
            parallel.append(baseline.run(TASKS, SLOTS))
            log(f"round {r}: baseline {SLOTS} at a time: {parallel[-1]['wall']:.1f} s")
            before = apiserver_writes(local)
            wide.append(bench.sprint(f"wide-{r}", chain=False))
            writes += apiserver_writes(local) - before
            log(f"round {r}: sprint of {TASKS} independent tasks: {wide[-1]['wall']:.1f} s")
            serial.append(baseline.run(TASKS, 1))
            log(f"round {r}: baseline one at a time: {serial[-1]['wall']:.1f} s")
            chains.append(bench.sprint(f"chain-{r}", chain=True))
            log(f"round {r}: sprint of a {TASKS}-task chain: {chains[-1]['wall']:.1f} s")
    finally:
        operator.terminate()
        operator.wait(timeout=60)
    task_s, utilization = span_figures(wide)
    raw_parallel = statistics.median(t for b in parallel for t in b["tasks"])
    raw_serial = statistics.median(t for b in serial for t in b["tasks"])
    return {
        "overhead_ratio": round(task_s / raw_parallel, 3),
        "overhead_ratio_vs_serial": round(task_s / raw_serial, 3),
        "task_median_s": round(task_s, 3),
        "baseline_task_median_s": round(raw_parallel, 3),
        "baseline_serial_task_median_s": round(raw_serial, 3),
        "independent_wall_s": round(statistics.median(w["wall"] for w in wide), 2),
        "baseline_independent_wall_s": round(statistics.median(b["wall"] for b in parallel), 2),
        "chain_wall_s": round(statistics.median(c["wall"] for c in chains), 2),
        "baseline_chain_wall_s": round(statistics.median(b["wall"] for b in serial), 2),
        "slot_utilization": round(utilization, 4),
        "api_writes_per_task": round(writes / (TASKS * ROUNDS), 2),
        "tasks": TASKS,
        "slots": SLOTS,
        "rounds": ROUNDS,
        "phases": sorted({s["phase"] for s in wide + chains}),
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
