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

`--runtime kubernetes` (bench/_sprint_pods.py): the Pods runtime on a 2-node local cluster beside the
Podman runtime, each against its raw baseline (bare Pods / `podman run`), 10- and 50-task sprints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "bench"))

from _baseline import IMAGE, Baseline  # noqa: E402
from _sprints import (  # noqa: E402
    Bench,
    apiserver_writes,
    log,
    median_parts,
    seed,
    span_figures,
    start_operator,
    stop_operator,
)
from _sprints import write_recipes as _write_recipes  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TASKS = int(os.environ.get("BENCH_TASKS", "10"))
SLOTS = int(os.environ.get("BENCH_SLOTS", "5"))
# the operator's own writes under the Podman runtime, their status subresources included
COUNTED = ("sprints", "tasks", "events")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False
    )
    parser.add_argument(
        "--runtime", choices=("podman", "kubernetes"), default="podman",
        help="kubernetes: the Pods runtime on a 2-node cluster beside Podman (bench/_sprint_pods.py)",
    )  # fmt: skip
    args, rest = parser.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and operator are stopped
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    if args.runtime == "kubernetes":
        from _sprint_pods import main as kubernetes_main

        return kubernetes_main(rest)
    if rest in (["-h"], ["--help"]):
        parser.print_help()
        return 0
    if rest:
        parser.error(f"unknown arguments: {' '.join(rest)}")
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
    local.apply_crds(REPO / "crds")
    _write_recipes(tmp / "recipes-baseline", "files/", TASKS)
    baseline = Baseline(tmp / "baseline", tmp / "recipes-baseline", seed(tmp, "baseline"))
    operator = start_operator(
        tmp, local,
        f"orchestrator: {{max_parallel_tasks_per_sprint: {SLOTS}, allowed_host_paths: ['{tmp}']}}\n"
        f"git: {{working_trees_path: '{tmp / 'trees'}'}}\n"
        f"containers: {{base_image: {IMAGE}}}\n",
    )  # fmt: skip
    wide, chains, parallel, serial = [], [], [], []
    writes: Counter[str] = Counter()
    try:
        for r in range(ROUNDS):
            parallel.append(baseline.run(TASKS, SLOTS))
            log(f"round {r}: baseline {SLOTS} at a time: {parallel[-1]['wall']:.1f} s")
            before = apiserver_writes(local)
            wide.append(bench.sprint(f"wide-{r}", False, TASKS, SLOTS))
            after = apiserver_writes(local)
            writes.update({k: after[k] - before[k] for k in after if k.split("/")[0] in COUNTED})
            log(f"round {r}: sprint of {TASKS} independent tasks: {wide[-1]['wall']:.1f} s")
            serial.append(baseline.run(TASKS, 1))
            log(f"round {r}: baseline one at a time: {serial[-1]['wall']:.1f} s")
            chains.append(bench.sprint(f"chain-{r}", True, TASKS, SLOTS))
            log(f"round {r}: sprint of a {TASKS}-task chain: {chains[-1]['wall']:.1f} s")
    finally:
        stop_operator(operator)
        bench.close()
    task_s, utilization = span_figures(wide, SLOTS)
    raw_parallel = statistics.median(t for b in parallel for t in b["tasks"])
    raw_serial = statistics.median(t for b in serial for t in b["tasks"])
    return {
        "overhead_ratio": round(task_s / raw_parallel, 3),
        "overhead_ratio_vs_serial": round(task_s / raw_serial, 3),
        "task_median_s": round(task_s, 3),
        "baseline_task_median_s": round(raw_parallel, 3),
        "task_parts_median_s": median_parts(wide),
        "baseline_serial_task_median_s": round(raw_serial, 3),
        "independent_wall_s": round(statistics.median(w["wall"] for w in wide), 2),
        "baseline_independent_wall_s": round(statistics.median(b["wall"] for b in parallel), 2),
        "chain_wall_s": round(statistics.median(c["wall"] for c in chains), 2),
        "baseline_chain_wall_s": round(statistics.median(b["wall"] for b in serial), 2),
        "slot_utilization": round(utilization, 4),
        "api_writes_per_task": round(writes.total() / (TASKS * ROUNDS), 2),
        "api_writes_per_task_by_resource": {
            k: round(v / (TASKS * ROUNDS), 2) for k, v in sorted(writes.items()) if v > 0
        },
        "tasks": TASKS,
        "slots": SLOTS,
        "rounds": ROUNDS,
        "phases": sorted({s["phase"] for s in wide + chains}),
    }


if __name__ == "__main__":
    sys.exit(main())
