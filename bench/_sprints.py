"""What bench/sprint.py's runs share: sprint manifests and recipes, applying a sprint and waiting for main
to move, the Tasks' spans and slot utilization, the operator process, the kube-apiserver's write
counters."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))

from _baseline import sh  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402

TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\d+)$", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')
Span = tuple[dt.datetime, dt.datetime]


def apiserver_writes(local: LocalCluster) -> Counter[str]:
    """Writes so far by resource (`pods/status` for a subresource), from the kube-apiserver's /metrics:
    every client's (the operator's, the kubelets', the scheduler's)."""
    pki = local.state_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    server = json.loads((local.state_dir / "state.json").read_text())["server"]
    with urllib.request.urlopen(f"{server}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    counts: Counter[str] = Counter()
    for match in SAMPLE.finditer(text):
        labels = dict(LABEL.findall(match.group(1)))
        if labels.get("verb") in WRITE_VERBS:
            sub = labels.get("subresource")
            counts[labels.get("resource", "") + (f"/{sub}" if sub else "")] += int(match.group(2))
    return counts


def when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def sprint_manifest(
    name: str, bare: Path, recipes: Path, chain: bool, tasks: int, slots: int, namespace: str = "default"
) -> dict[str, Any]:
    items = [
        {
            "id": f"t{i:02d}",
            "title": f"write file {i}",
            "filesToModify": [f"files/{name}/t{i:02d}.txt"],
            "testRequirements": [f"test -s files/{name}/t{i:02d}.txt"],
            "dependencies": [f"t{i - 1:02d}"] if chain and i else [],
        }
        for i in range(tasks)
    ]
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "repository": {"url": str(bare)},
            "team": {"type": "demo", "recipes": str(recipes)},
            "maxParallelTasks": slots,
            "tasks": items,
        },
    }


def write_recipes(recipes: Path, prefix: str, tasks: int) -> None:
    """Task tNN writes {prefix}tNN.txt (a new file: a real change to commit, gate and merge)."""
    for i in range(tasks):
        target = recipes / f"t{i:02d}" / f"{prefix}t{i:02d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"task {i}\n")


def seed(tmp: Path, name: str) -> Path:
    """A bare repository with one commit on main."""
    work = tmp / f"seed-{name}"
    work.mkdir()
    (work / "README.md").write_text("bench\n")
    sh("git", "init", "-q", "-b", "main", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init", cwd=work)
    bare = tmp / f"{name}.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
    sh("git", "push", "-q", str(bare), "main", cwd=work)
    return bare


class Bench:
    """Applies sprints to one namespace and one target repository; reads their status through the API
    (a kubernetes client, not a kubectl process per poll: the polling must not load the machine)."""

    def __init__(self, tmp: Path, local: LocalCluster, namespace: str = "default", repo: str = "target"):
        self.tmp, self.local, self.namespace = tmp, local, namespace
        self.kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig)]
        self.bare = seed(tmp, repo)  # one repository: the operator keeps one clone per trees path
        self.api = config.new_client_from_config(config_file=str(local.kubeconfig))  # type: ignore[no-untyped-call]
        self.custom = client.CustomObjectsApi(self.api)

    def close(self) -> None:
        self.api.close()

    def sprint(self, name: str, chain: bool, tasks: int, slots: int) -> dict[str, Any]:
        """Apply one sprint; wall time from the apply to main moved; its Tasks' spans."""
        recipes = self.tmp / f"recipes-{name}"
        write_recipes(recipes, f"files/{name}/", tasks)
        before = sh("git", "--git-dir", str(self.bare), "rev-parse", "main").strip()
        manifest = sprint_manifest(name, self.bare, recipes, chain, tasks, slots, self.namespace)
        started = time.perf_counter()
        subprocess.run(
            [*self.kubectl, "apply", "-f", "-"], input=json.dumps(manifest), text=True, check=True,
            capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 3600
        while True:
            ended = self.phase(name) in TERMINAL  # read before main: main moves before the phase
            if sh("git", "--git-dir", str(self.bare), "rev-parse", "main").strip() != before:
                break
            if ended:
                raise SystemExit(f"sprint {name} ended without moving main: {self.status(name)['message']}")
            if time.monotonic() > deadline:
                raise SystemExit(f"sprint {name}: main did not move in an hour")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        while (phase := self.phase(name)) not in TERMINAL:
            time.sleep(0.2)
        label = f"sprintorchestrator.dev/sprint={name}"
        found = self.custom.list_namespaced_custom_object(
            "sprintorchestrator.dev", "v1alpha1", self.namespace, "tasks", label_selector=label
        )
        items = cast(dict[str, Any], found)["items"]
        spans = [(when(t["status"]["startTime"]), when(t["status"]["completionTime"])) for t in items]
        return {"wall": wall, "spans": spans, "phase": phase, "parts": [parts(t["status"]) for t in items]}

    def status(self, name: str) -> dict[str, Any]:
        sprint = self.custom.get_namespaced_custom_object(
            "sprintorchestrator.dev", "v1alpha1", self.namespace, "sprints", name
        )
        return dict(cast(dict[str, Any], sprint).get("status") or {})

    def phase(self, name: str) -> str:
        return str(self.status(name).get("phase") or "")


def parts(status: dict[str, Any]) -> dict[str, float]:
    """Where a task's time went, from its status: admitted -> gated less the gates (workspace, the task's
    container or Pod, the commit), the gates (each a fresh container or Pod), gated -> merged (the merge
    queue and the merge)."""
    start, gated, done = (when(status[k]) for k in ("startTime", "gatedAt", "completionTime"))
    gates = sum(float(g.get("durationSeconds") or 0) for g in status.get("gates") or [])
    found = {
        "run_s": (gated - start).total_seconds() - gates,
        "gates_s": gates,
        "merge_s": (done - gated).total_seconds(),
    }
    if status.get("containerStartedAt") and status.get("containerFinishedAt"):
        # run_s in three: admitted -> the command started (workspace, container or Pod start), the
        # command's own life (for a Pod: the download, the policy wait, the team, the upload), and
        # its end -> gated less the gates (the end noticed, results collected, the commit)
        began, ended = when(status["containerStartedAt"]), when(status["containerFinishedAt"])
        found |= {
            "to_container_s": (began - start).total_seconds(),
            "container_s": (ended - began).total_seconds(),
            "after_container_s": (gated - ended).total_seconds() - gates,
        }
    return found


def median_parts(runs: list[dict[str, Any]]) -> dict[str, float]:
    found = [p for run in runs for p in run["parts"]]
    keys = [k for k in found[0] if all(k in p for p in found)] if found else []
    return {key: round(statistics.median(p[key] for p in found), 3) for key in keys}


def occupied_seconds(spans: list[Span], slots: int) -> float:
    """Slot-seconds in use: at each instant min(tasks admitted and not yet merged, slots) (a task
    waiting in the merge queue no longer holds a slot, so more than `slots` can be in flight)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    total, active, last = 0.0, 0, events[0][0]
    for moment, step in events:
        total += min(active, slots) * (moment - last).total_seconds()
        active, last = active + step, moment
    return total


def span_figures(runs: list[dict[str, Any]], slots: int) -> tuple[float, float]:
    """(median task seconds, slot utilization) over the sprints."""
    durations, busy, capacity = [], 0.0, 0.0
    for run in runs:
        spans = run["spans"]
        durations += [(e - s).total_seconds() for s, e in spans]
        busy += occupied_seconds(spans, slots)
        capacity += slots * (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds()
    return statistics.median(durations), busy / capacity


def start_operator(
    tmp: Path, local: LocalCluster, config_text: str, namespace: str = "default", name: str = "operator"
) -> subprocess.Popen[bytes]:
    """`sprintctl operator --namespace NAMESPACE` with its own configuration and state directory."""
    config_file = tmp / f"{name}.yaml"
    config_file.write_text(config_text)
    env = {
        **os.environ,
        "KUBECONFIG": str(local.kubeconfig),
        "SPRINT_ORCHESTRATOR_CONFIG": str(config_file),
        "SPRINT_ORCHESTRATOR_STATE_DIR": str(tmp / f"{name}-state"),
    }
    sprintctl = str(Path(sys.executable).parent / "sprintctl")
    with open(tmp / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [sprintctl, "operator", "--namespace", namespace], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
