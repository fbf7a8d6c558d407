"""Per-task container overhead through the runtime adapter vs raw `podman run`, in the same run.

Adapter: start_task (create + start) + wait + collect_results + remove, through podman-py and the API
service, for a task that runs `true` with all the hardening (no network, caps dropped, read-only root,
limits, init, capped log). Baseline: `podman run --rm --network none IMAGE true` from the CLI. The two
alternate, so both see the same machine load. Also where a one-shot (gate) container's time goes, by step
through the adapter (create, the disk cap's attach, start, wait, remove: `oneshot_parts_median_s`): what
a pool of pre-created containers could take off a gate's critical path is its create step. Last line:
{"adapter_s", "raw_podman_s", "ratio", "oneshot_parts_median_s", ...}.

    CONTAINERS_CONF=hack/containers.conf .venv/bin/python bench/container_overhead.py [--runs N]
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

from sprint_orchestrator.runtime import (  # noqa: E402
    AGENT_USER,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_ROLE,
    Limits,
    Mount,
    RunHandle,
    TaskRunSpec,
    containers,
    ownership,
)
from sprint_orchestrator.runtime.podman import PodmanRuntime  # noqa: E402
from sprint_orchestrator.settings import Settings  # noqa: E402
from sprint_orchestrator.teams import collect_results  # noqa: E402

IMAGE = "localhost/sprint-orchestrator/base:bookworm"


def adapter_once(runtime: PodmanRuntime, root: Path, sprint: str, i: int) -> float:
    workspace, artifacts = root / f"w{i}", root / f"a{i}"
    workspace.mkdir()
    artifacts.mkdir()
    spec = TaskRunSpec(
        sprint_id=sprint, task_id=f"task{i}", attempt=1, image=IMAGE, command=["true"], workspace=workspace,
        artifacts=artifacts, limits=Limits(cpus=1.0, memory_bytes=256 << 20, pids=128), timeout_s=60,
    )  # fmt: skip
    begin = time.perf_counter()
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    collect_results(workspace, artifacts, outcome.log_path.with_suffix(".stdout"))
    runtime.remove(handle)
    elapsed = time.perf_counter() - begin
    if outcome.exit_code != 0:
        raise SystemExit(f"adapter run {i} failed: {outcome}")
    return elapsed


def oneshot_parts(runtime: PodmanRuntime, root: Path, i: int) -> dict[str, float]:
    """A gate's container through the adapter's own steps (podmanoneshot.run_once), each timed."""
    tree = root / f"g{i}"
    tree.mkdir()
    (tree / "f").write_text("x\n")
    name = f"so-oneshot-{uuid.uuid4().hex[:12]}"
    limits = Limits(cpus=1.0, memory_bytes=256 << 20, pids=128, disk_bytes=1 << 30)
    user = ownership.effective_user(AGENT_USER)
    command = ["/bin/sh", "-c", "test -s f"]
    kwargs = containers.hardened(IMAGE, command, name, limits, runtime._log(name), user, runtime.userns)
    kwargs["labels"] = {LABEL_ROLE: "oneshot", LABEL_OWNER: runtime.owner, LABEL_INSTANCE: runtime.instance}
    kwargs["mounts"] = [containers.bind(Mount(tree, "/workspace", False), runtime.userns), containers.TMP]
    marks = [time.perf_counter()]
    container = runtime.client.containers.create(**kwargs)
    marks.append(time.perf_counter())
    runtime._attach_disk(name, limits, {"workspace": tree})
    marks.append(time.perf_counter())
    container.start()
    marks.append(time.perf_counter())
    outcome = runtime.wait(RunHandle(name, container.id, "", "", 0, runtime._log(name), None), 60)
    marks.append(time.perf_counter())
    runtime.remove(name)
    marks.append(time.perf_counter())
    if outcome.exit_code != 0:
        raise SystemExit(f"one-shot run {i} failed: {outcome}")
    steps = ("create", "disk", "start", "wait", "remove")
    return {step: marks[k + 1] - marks[k] for k, step in enumerate(steps)} | {"total": marks[-1] - marks[0]}


def raw_once(env: dict[str, str]) -> float:
    begin = time.perf_counter()
    subprocess.run(["podman", "run", "--rm", "--network", "none", IMAGE, "true"], env=env, check=True)
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = {
        **os.environ,
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "hack/containers.conf")),
    }
    subprocess.run(["bash", str(REPO / "hack/base-image.sh")], env=env, check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        root = Path(tmp)
        runtime = PodmanRuntime.connect(Settings(state_dir=root / "state", base_image=IMAGE, env=env))
        sprint = f"bench{uuid.uuid4().hex[:8]}"
        try:
            adapter_once(runtime, root, sprint, -1)  # warm-up: first API calls, image layers in cache
            raw_once(env)
            adapter, raw, parts = [], [], []
            for i in range(args.runs):
                adapter.append(adapter_once(runtime, root, sprint, i))
                raw.append(raw_once(env))
                parts.append(oneshot_parts(runtime, root, i))
        finally:
            for info in runtime.find_task_containers(sprint):
                runtime.remove(info.name)
            runtime.close()
    a, r = statistics.median(adapter), statistics.median(raw)
    print(f"adapter median {a * 1000:.0f} ms, raw podman run median {r * 1000:.0f} ms over {args.runs} runs")
    print(json.dumps({
        "adapter_s": round(a, 4), "raw_podman_s": round(r, 4), "ratio": round(a / r, 3), "runs": args.runs,
        "adapter_p90_s": round(sorted(adapter)[int(0.9 * (len(adapter) - 1))], 4),
        "raw_podman_p90_s": round(sorted(raw)[int(0.9 * (len(raw) - 1))], 4),
        "oneshot_parts_median_s": {k: round(statistics.median(p[k] for p in parts), 4) for k in parts[0]},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
