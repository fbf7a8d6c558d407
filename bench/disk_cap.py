"""What the size-capped disk adds to a task: the same task through the runtime adapter with and without
`disk_bytes`, alternating, in the same run.

Each run: start_task + wait + remove of a task that runs `true` on a workspace of FILES small files (a
small repository's checkout). With the cap, that includes the 2Gi ext4 image (truncate + mkfs.ext4),
its loop mount, the binds over workspace and artifacts, the copy in and the copy back. Last line:
{"capped_s", "uncapped_s", "overhead_s", "ratio", ...} (medians).

    CONTAINERS_CONF=hack/containers.conf .venv/bin/python bench/disk_cap.py [--runs N] [--files N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from sprint_orchestrator.runtime import Limits, TaskRunSpec  # noqa: E402
from sprint_orchestrator.runtime.podman import PodmanRuntime  # noqa: E402
from sprint_orchestrator.settings import Settings  # noqa: E402

IMAGE = "localhost/sprint-orchestrator/base:bookworm"
CAP = 2 << 30


def once(runtime: PodmanRuntime, root: Path, sprint: str, i: int, files: int, disk: int | None) -> float:
    workspace, artifacts = root / f"w{i}", root / f"a{i}"
    for n in range(files):
        path = workspace / f"pkg{n % 10}" / f"f{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n" * 600)  # about 4 KB
    artifacts.mkdir()
    limits = Limits(cpus=1.0, memory_bytes=256 << 20, pids=128, disk_bytes=disk)
    spec = TaskRunSpec(
        sprint_id=sprint, task_id=f"task{i}", attempt=1, image=IMAGE, command=["true"], workspace=workspace,
        artifacts=artifacts, limits=limits, timeout_s=120,
    )  # fmt: skip
    begin = time.perf_counter()
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    elapsed = time.perf_counter() - begin
    if outcome.exit_code != 0 or len(list(workspace.rglob("*.py"))) != files:
        raise SystemExit(f"run {i} failed: {outcome}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the disk cap needs a root operator (it mounts)")
    env = {
        **os.environ,
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "hack/containers.conf")),
    }
    subprocess.run(["bash", str(REPO / "hack/base-image.sh")], env=env, check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        root = Path(tmp)
        runtime = PodmanRuntime.connect(Settings(state_dir=root / "state", base_image=IMAGE, env=env))
        sprint = f"bench{uuid.uuid4().hex[:8]}"
        try:
            once(runtime, root, sprint, -1, args.files, CAP)  # warm-up
            capped, uncapped = [], []
            for i in range(args.runs):
                capped.append(once(runtime, root, sprint, 2 * i, args.files, CAP))
                uncapped.append(once(runtime, root, sprint, 2 * i + 1, args.files, None))
        finally:
            for info in runtime.find_task_containers(sprint):
                runtime.remove(info.name)
            runtime.close()
    c, u = statistics.median(capped), statistics.median(uncapped)
    print(f"task with a 2Gi disk cap median {c * 1000:.0f} ms, without {u * 1000:.0f} ms ({args.runs} runs)")
    print(json.dumps({
        "capped_s": round(c, 4), "uncapped_s": round(u, 4), "overhead_s": round(c - u, 4),
        "ratio": round(c / u, 3), "runs": args.runs, "files": args.files,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
