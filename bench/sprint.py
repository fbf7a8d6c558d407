"""Benchmark: a sprint of 50 no-op tasks (maxParallelTasks 5) on the local control plane.

Measures, in one run:
- slot utilization: busy slot-seconds / (slots x wall time), from the Tasks' start/completion times;
- per-task orchestration overhead: the median task time (admitted -> merged) against the sum of the raw
  primitives the task needs, timed here on the same machine with the same parallelism (5 at a time):
  `git worktree add` + `git commit` + `git merge` and `podman run --rm --network none` of the same team
  container (also reported against the primitives run one at a time: overhead_ratio_vs_serial);
- Kubernetes API writes per task: the kube-apiserver's own request counters (POST/PUT/PATCH/DELETE on
  sprints, tasks and events) before and after the sprint.

Last line: {"slot_utilization": ..., "overhead_ratio": ..., "api_writes_per_task": ...}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))

from localcluster import BIN, LocalCluster  # noqa: E402

TASKS = 50
SLOTS = 5
IMAGE = "localhost/sprint-orchestrator/base:bookworm"
MERGE = threading.Lock()  # one merge at a time into the shared branch, as the operator does
WRITE = re.compile(
    r'apiserver_request_total\{[^}]*resource="(sprints|tasks|events)"[^}]*verb="(POST|PUT|PATCH|DELETE)"[^}]*\}'
    r" (\d+)"
)


def sh(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def apiserver_writes(local: LocalCluster) -> int:
    pki = local.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    server = json.loads((local.state_dir / "state.json").read_text())["server"]
    with urllib.request.urlopen(f"{server}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    return sum(int(m.group(3)) for m in WRITE.finditer(text))


def seed(tmp: Path) -> Path:
    work = tmp / "seed"
    work.mkdir()
    (work / "README.md").write_text("bench\n")
    sh("git", "init", "-q", "-b", "main", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init", cwd=work)
    bare = tmp / "target.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
    sh("git", "push", "-q", str(bare), "main", cwd=work)
    return bare


def raw_task(tmp: Path, repo: Path, i: int) -> tuple[float, float]:
    """One task done by hand: git worktree add + commit + merge, and a podman run of the team."""
    team = REPO / "operator" / "sprint_orchestrator" / "teams" / "files"
    start = time.perf_counter()
    wt = tmp / f"wt{i}"
    sh("git", "worktree", "add", "-q", "-b", f"t{i}", str(wt), "main", cwd=repo)
    (wt / f"f{i}.txt").write_text("x\n")
    sh("git", "add", "-A", cwd=wt)
    sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "t", cwd=wt)
    with MERGE:
        sh(
            "git",
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "m",
            f"t{i}",
            cwd=repo,
        )
    git_s = time.perf_counter() - start
    art = tmp / f"art{i}"
    art.mkdir()
    start = time.perf_counter()
    sh(
        "podman",
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{wt}:/workspace",
        "-v",
        f"{art}:/artifacts",
        "-v",
        f"{team}:/opt/sprint-team:ro",
        "-w",
        "/workspace",
        "-e",
        f"SPRINT_TASK_ID=t{i}",
        IMAGE,
        "python3",
        "/opt/sprint-team/demo_team.py",
    )
    return git_s, time.perf_counter() - start


def raw_primitives(tmp: Path, parallel: int, runs: int = 10) -> tuple[float, float]:
    """Median seconds of the raw git steps and of the raw podman run, `parallel` tasks at a time
    (the sprint runs SLOTS tasks at once; Podman is slower under concurrency, so compare like with like)."""
    repo = tmp / f"raw{parallel}"
    sh("git", "clone", "-q", str(tmp / "target.git"), str(repo))
    base = tmp / f"p{parallel}"
    base.mkdir()
    with ThreadPoolExecutor(parallel) as pool:
        times = list(pool.map(lambda i: raw_task(base, repo, i), range(runs * parallel)))
    return statistics.median(g for g, _ in times), statistics.median(p for _, p in times)


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def main() -> int:
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    with tempfile.TemporaryDirectory(prefix="bench-sprint-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster")
        local.up()
        kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig)]
        try:
            sh(*kubectl, "apply", "--server-side", "-f", str(REPO / "crds"))
            sh(
                *kubectl,
                "wait",
                "--for=condition=Established",
                "crd/sprints.sprintorchestrator.dev",
                "crd/tasks.sprintorchestrator.dev",
                "--timeout=60s",
            )
            bare = seed(tmp)
            config = tmp / "config.yaml"
            config.write_text(
                "orchestrator: {max_parallel_tasks_per_sprint: 5}\n"
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
                operator = subprocess.Popen(
                    [sprintctl, "operator", "--namespace", "default"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            manifest = {
                "apiVersion": "sprintorchestrator.dev/v1alpha1",
                "kind": "Sprint",
                "metadata": {"name": "bench", "namespace": "default"},
                "spec": {
                    "repository": {"url": str(bare)},
                    "maxParallelTasks": SLOTS,
                    "tasks": [{"id": f"t{i:02d}", "title": f"no-op {i}"} for i in range(TASKS)],
                },
            }
            before = apiserver_writes(local)
            subprocess.run(
                [*kubectl, "apply", "-f", "-"],
                input=json.dumps(manifest),
                text=True,
                check=True,
                capture_output=True,
            )
            deadline = time.monotonic() + 1800
            while True:
                sprint = json.loads(sh(*kubectl, "get", "sprint", "bench", "-o", "json"))
                if (sprint.get("status") or {}).get("phase") in (
                    "Completed",
                    "Partial",
                    "Failed",
                    "RolledBack",
                ):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the benchmark sprint did not finish in 30 minutes")
                time.sleep(1)
            after = apiserver_writes(local)
            operator.terminate()
            operator.wait(timeout=30)
            tasks = json.loads(sh(*kubectl, "get", "stask", "-o", "json"))["items"]
            spans = [(when(t["status"]["startTime"]), when(t["status"]["completionTime"])) for t in tasks]
            wall = (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds()
            busy = sum((e - s).total_seconds() for s, e in spans)
            task_s = statistics.median((e - s).total_seconds() for s, e in spans)
            raw_git, raw_podman = raw_primitives(tmp, SLOTS)
            serial_git, serial_podman = raw_primitives(tmp, 1, runs=5)
        finally:
            local.down()
    figures = {
        "slot_utilization": round(busy / (SLOTS * wall), 4),
        "overhead_ratio": round(task_s / (raw_git + raw_podman), 3),
        "api_writes_per_task": round((after - before) / TASKS, 2),
        "task_median_s": round(task_s, 3),
        "raw_git_s": round(raw_git, 4),
        "raw_podman_s": round(raw_podman, 4),
        "overhead_ratio_vs_serial": round(task_s / (serial_git + serial_podman), 3),
        "serial_git_s": round(serial_git, 4),
        "serial_podman_s": round(serial_podman, 4),
        "wall_s": round(wall, 1),
        "phase": sprint["status"]["phase"],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
