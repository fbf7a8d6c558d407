"""The raw-Pod baseline of `bench/sprint.py --runtime kubernetes`: one demo-team task done by hand with
bare Pods on the same nodes, image and resources as the operator's Pods.

Per task, what bench/_baseline.py does with `podman run`, with a Pod instead: `git worktree add` of a task
branch, TASK.md and .sprint/task.json, a Pod of the demo team (same image by digest, same team script and
recipes) with the worktree as a hostPath volume at /workspace, created and watched until Succeeded; the
orchestrator files moved out, `git commit`, the tree exported (`git archive`) and the gate run on it in
a second Pod, `git merge --no-ff` into main (one at a time), `git worktree remove`. The nodes of the local
cluster share the host's disk, so a hostPath is the cheapest way to hand a Pod the work: no transfer,
no init container, no NetworkPolicy, no Secret (what the operator adds for Pods on any node).

Each Pod is stamped from its create request to the watch event that shows it Succeeded (a watch, not a
poll: the baseline should be the floor), and deleted at once, as the operator deletes its Pods.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from _baseline import IDENTITY, TEAM, sh


class PodBaseline:
    def __init__(
        self, root: Path, recipes: Path, bare: Path, kubeconfig: Path, namespace: str, image: str,
        resources: dict[str, str],
    ) -> None:  # fmt: skip
        self.root, self.recipes, self.bare = root, recipes, bare
        self.namespace, self.image, self.resources = namespace, image, resources
        self.api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(self.api)
        self.runs = 0
        self.metadata = threading.Lock()  # worktree add/remove, as the operator's repository flock
        self.merging = threading.Lock()  # one merge into main at a time, as the operator's merge queue

    def close(self) -> None:
        self.api.close()

    def run(self, tasks: int, parallel: int) -> dict[str, Any]:
        """`tasks` tasks, `parallel` at a time, on a fresh clone: wall seconds, each task's seconds and
        each Pod's create -> Succeeded seconds."""
        self.runs += 1
        work = self.root / f"run{self.runs}"
        work.mkdir(parents=True)
        repo = work / "repo"
        sh("git", "clone", "-q", str(self.bare), str(repo))
        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            results = list(pool.map(lambda i: self.task(work, repo, f"t{i:02d}"), range(tasks)))
        wall = time.perf_counter() - started
        shutil.rmtree(work, ignore_errors=True)
        return {
            "wall": wall,
            "tasks": [r[0] for r in results],
            "task_pods": [r[1] for r in results],
            "gate_pods": [r[2] for r in results],
        }

    def task(self, work: Path, repo: Path, task: str) -> tuple[float, float, float]:
        started = time.perf_counter()
        tree, artifacts = work / "trees" / task, work / "artifacts" / task
        artifacts.mkdir(parents=True)
        with self.metadata:
            sh("git", "worktree", "add", "-q", "-b", f"task/{task}", str(tree), "main", cwd=repo)
        command = f"test -s files/{task}.txt"
        (tree / ".sprint").mkdir()
        (tree / ".sprint" / "task.json").write_text(
            f'{{"id": "{task}", "title": "write file {task}", "test_requirements": ["{command}"]}}'
        )
        (tree / "TASK.md").write_text(f"# {task}\n\nWrite files/{task}.txt.\n")
        mounts = {"/workspace": tree, "/artifacts": artifacts, "/opt/sprint-team": TEAM}
        mounts["/opt/demo-recipes"] = self.recipes
        task_s = self.pod(["python3", "/opt/sprint-team/demo_team.py"], mounts)
        for name in ("TASK.md", "RESULTS.md"):
            shutil.move(str(tree / name), str(artifacts / name))
        shutil.rmtree(tree / ".sprint")
        sh("git", "add", "-A", cwd=tree)
        sh("git", *IDENTITY, "commit", "-qm", f"task {task}", cwd=tree)
        with tempfile.TemporaryDirectory(prefix="bench-gate-", dir=work) as tmp:
            archive = subprocess.run(["git", "archive", "HEAD"], cwd=tree, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            gate_s = self.pod(["/bin/sh", "-c", command], {"/workspace": Path(tmp)})
        with self.merging:
            sh("git", *IDENTITY, "merge", "-q", "--no-ff", "-m", f"Merge {task}", f"task/{task}", cwd=repo)
        with self.metadata:
            sh("git", "worktree", "remove", "--force", str(tree), cwd=repo)
        return time.perf_counter() - started, task_s, gate_s

    def pod(self, command: list[str], mounts: dict[str, Path]) -> float:
        """Create a Pod running `command` with `mounts` (hostPath volumes), watch it to Succeeded, delete
        it: seconds from the create request to the Succeeded event."""
        name = f"raw-{uuid.uuid4().hex[:12]}"
        volumes = [{"name": f"v{i}", "hostPath": {"path": str(p), "type": "Directory"}} for i, p in
                   enumerate(mounts.values())]  # fmt: skip
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {
                        "name": "main",
                        "image": self.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": command,
                        "workingDir": "/workspace",
                        "resources": {"limits": self.resources, "requests": self.resources},
                        "volumeMounts": [{"name": f"v{i}", "mountPath": t} for i, t in enumerate(mounts)],
                    }
                ],
                "volumes": volumes,
            },
        }
        started = time.perf_counter()
        created: Any = self.core.create_namespaced_pod(self.namespace, body)  # type: ignore[arg-type]
        phase = self._watch_until_done(name, str(created.metadata.resource_version))
        seconds = time.perf_counter() - started
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        if phase != "Succeeded":
            logs = self.core.read_namespaced_pod_log(name, self.namespace, container="main")
            raise RuntimeError(f"baseline Pod {name} ({' '.join(command)}): {phase}\n{logs}")
        return seconds

    def _watch_until_done(self, name: str, version: str) -> str:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                for event in stream.stream(  # type: ignore[no-untyped-call]
                    self.core.list_namespaced_pod, self.namespace, field_selector=f"metadata.name={name}",
                    resource_version=version, timeout_seconds=60,
                ):  # fmt: skip
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    if pod.status.phase in ("Succeeded", "Failed"):
                        return str(pod.status.phase)
        finally:
            stream.stop()  # type: ignore[no-untyped-call]
        raise RuntimeError(f"baseline Pod {name} did not end in 10 minutes")
