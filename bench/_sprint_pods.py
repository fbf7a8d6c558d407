"""`bench/sprint.py --runtime kubernetes`: sprints on the Pods runtime beside the Podman runtime, in one run.

A local cluster with two real nodes (`hack/cluster up --nodes 2`) and two operators, each watching its
own namespace: one with `containers.runtime: pods` (task and gate Pods in a namespace enforcing the
restricted Pod Security level, the base image pushed to the cluster's registry and run by digest,
workspaces over the transfer endpoint), one with the Podman runtime. For each sprint size (10 and 50
tasks by default), round after round, interleaved so all see the same machine load:

    raw Pods, SLOTS at a time -> Pods-runtime sprint -> raw podman, SLOTS at a time -> Podman-runtime sprint

Every task is the same demo-team work (bench/sprint.py: write one file, gate `test -s FILE`, merge). The
raw baselines do it by hand (bench/_podbaseline.py: a Pod of the demo team on a hostPath worktree, a
gate Pod, git; bench/_baseline.py: the same with `podman run`). Both operators' Pods and containers and
the raw Pods get the same CPU and memory (requests = limits: --cpu, --memory), so SLOTS task Pods fit
the two nodes at once (the operator's default, 2 CPUs requested, lets one task Pod run per 2-core node).

Figures per runtime and size: apply -> main moved (the last merge) beside the raw baseline's wall time,
the median task (admitted -> merged) against the median raw task and against the raw Pod's create ->
Succeeded time alone, slot utilization, and Kubernetes API writes per task by resource (every client's:
the operator's, the kubelets' `pods/status`, the scheduler's `pods/binding`, both's events), from the
kube-apiserver's own request counters. Also the machine's load average at the start and end.

With --warm-gate-pods N (2; 0: not), a third operator runs the Pods runtime with N warm gate Pods per
sprint (containers.warm_gate_pods, runtime/podpool.py) in its own restricted namespace, after the first
in each round, against the same raw baseline run again ("pods-warm").

Last line: one JSON object. Flags: --sizes 10,50 (BENCH_SIZES), --rounds 1 (BENCH_ROUNDS), --slots 5,
--cpu 500m, --memory 512Mi, --warm-gate-pods 2 (BENCH_WARM_GATE_PODS). Smoke: `bench/sprint.py --runtime
kubernetes --sizes 2 --slots 2`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _baseline import IMAGE, Baseline
from _podbaseline import PodBaseline
from _sprints import (
    REPO,
    Bench,
    apiserver_writes,
    log,
    median_parts,
    seed,
    span_figures,
    start_operator,
    stop_operator,
    write_recipes,
)
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.runtime.registry import pin

PODS_NS, PODMAN_NS, RAW_NS = "bench-pods", "bench-podman", "bench-raw"
WARM_NS = "bench-pods-warm"  # the Pods runtime with containers.warm_gate_pods (--warm-gate-pods)
COUNTED = ("sprints", "tasks", "events", "pods", "networkpolicies", "secrets")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/sprint.py --runtime kubernetes", description=__doc__)
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "10,50"))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "1")))
    parser.add_argument("--slots", type=int, default=int(os.environ.get("BENCH_SLOTS", "5")))
    parser.add_argument("--cpu", default="500m")
    parser.add_argument("--memory", default="512Mi")
    parser.add_argument(
        "--warm-gate-pods", type=int, default=int(os.environ.get("BENCH_WARM_GATE_PODS", "2")),
        help="also run the Pods runtime with this many warm gate Pods per sprint (0: not)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: comma-separated task counts, not {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 1 or args.slots < 1 or args.rounds < 1:
        parser.error("--sizes, --slots and --rounds must be at least 1")
    if args.warm_gate_pods < 0:
        parser.error("--warm-gate-pods must be 0 or more")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sprint-pods-") as tmpdir:
        tmp = Path(tmpdir)
        local = LocalCluster(tmp / "cluster", nodes=2)
        local.up()
        try:
            figures = run(tmp, local, args)
        finally:
            local.down()
    figures["loadavg_start"] = [round(v, 2) for v in load]
    figures["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(figures))
    return 0


def prepare(local: LocalCluster) -> str:
    """CRDs, namespaces (the Pods runtime's restricted), the base image in the registry: its digest."""
    local.apply_crds(REPO / "crds")
    for ns in (PODS_NS, WARM_NS, PODMAN_NS, RAW_NS):
        local.kubectl("create", "namespace", ns)
    for ns in (PODS_NS, WARM_NS):
        local.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    deadline = time.monotonic() + 120
    for ns in (PODS_NS, WARM_NS, RAW_NS):  # no Pod is admitted before the namespace's default ServiceAccount
        while "serviceaccount/default" not in local.kubectl("-n", ns, "get", "sa", "-o", "name"):
            if time.monotonic() > deadline:
                raise SystemExit(f"namespace {ns}: no default ServiceAccount in 2 minutes")
            time.sleep(0.2)
    pushed = push_image(IMAGE, local.registry, "bench/base:bookworm")
    return pin(pushed, [local.registry])


def operator_config(
    tmp: Path, local: LocalCluster, args: argparse.Namespace, pods_image: str | None, warm: int = 0
) -> str:
    name = ("pods-warm" if warm else "pods") if pods_image else "podman"
    text = (
        f"orchestrator: {{max_parallel_tasks_per_sprint: {args.slots}, allowed_host_paths: ['{tmp}']}}\n"
        f"git: {{working_trees_path: '{tmp / f'trees-{name}'}'}}\n"
        f"containers: {{default_cpus: '{args.cpu}', default_memory: '{args.memory}', "
    )
    if pods_image is None:
        return text + f"base_image: {IMAGE}}}\n"
    node_set = local.node_set()
    assert node_set is not None
    return text + (
        f"runtime: pods, base_image: '{pods_image}', registry: '{local.registry}', "
        f"registry_plain_http: true, transfer_address: '{node_set.slot.host_ip}', "
        f"pods_namespace: {WARM_NS if warm else PODS_NS}, warm_gate_pods: {warm}}}\n"
    )


def run(tmp: Path, local: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    image = prepare(local)
    log(f"base image in the cluster's registry: {image}")
    write_recipes(tmp / "recipes-baseline", "files/", max(args.sizes))
    resources = {"cpu": args.cpu, "memory": args.memory}
    raw = PodBaseline(
        tmp / "raw", tmp / "recipes-baseline", seed(tmp, "raw"), local.kubeconfig, RAW_NS, image, resources
    )
    podman = Baseline(tmp / "baseline", tmp / "recipes-baseline", seed(tmp, "baseline"))
    raw.run(2, 2)  # the image pulled onto the nodes before anything is measured
    benches = {"pods": Bench(tmp, local, PODS_NS, "target-pods"), "podman": Bench(tmp, local, PODMAN_NS)}
    operators = [
        start_operator(tmp, local, operator_config(tmp, local, args, image), PODS_NS, "operator-pods"),
        start_operator(tmp, local, operator_config(tmp, local, args, None), PODMAN_NS, "operator-podman"),
    ]
    order: list[tuple[str, Any]] = [("pods", raw), ("podman", podman)]
    if args.warm_gate_pods:  # the same Pods runtime with warm gate Pods, beside it
        benches["pods-warm"] = Bench(tmp, local, WARM_NS, "target-pods-warm")
        config = operator_config(tmp, local, args, image, args.warm_gate_pods)
        operators.append(start_operator(tmp, local, config, WARM_NS, "operator-pods-warm"))
        order.insert(1, ("pods-warm", raw))
    results: dict[str, dict[int, dict[str, list[Any]]]] = {runtime: {} for runtime, _ in order}
    try:
        for size in args.sizes:
            for r in range(args.rounds):
                for runtime, baseline in order:
                    into = results[runtime].setdefault(size, {"baselines": [], "sprints": [], "writes": []})
                    into["baselines"].append(baseline.run(size, args.slots))
                    log(f"{size} tasks, round {r}: raw {runtime}: {into['baselines'][-1]['wall']:.1f} s")
                    before = apiserver_writes(local)
                    into["sprints"].append(benches[runtime].sprint(f"s{size}-{r}", False, size, args.slots))
                    into["writes"].append(apiserver_writes(local) - before)
                    log(f"{size} tasks, round {r}: {runtime} runtime: {into['sprints'][-1]['wall']:.1f} s")
    finally:
        for proc in operators:
            stop_operator(proc)
        for bench in benches.values():
            bench.close()
        raw.close()
    figures: dict[str, Any] = {
        runtime: {str(size): summary(parts, size, args) for size, parts in by_size.items()}
        for runtime, by_size in results.items()
    }
    figures |= {"slots": args.slots, "rounds": args.rounds, "cpu": args.cpu, "memory": args.memory}
    figures["warm_gate_pods"] = args.warm_gate_pods
    return figures


def summary(parts: dict[str, list[Any]], size: int, args: argparse.Namespace) -> dict[str, Any]:
    baselines, sprints = parts["baselines"], parts["sprints"]
    task_s, utilization = span_figures(sprints, args.slots)
    raw_task = statistics.median(t for b in baselines for t in b["tasks"])
    writes: Counter[str] = sum(parts["writes"], Counter())
    tasks = size * args.rounds
    counted = {k: v for k, v in sorted(writes.items()) if k.split("/")[0] in COUNTED and v > 0}
    figures = {
        "wall_s": round(statistics.median(s["wall"] for s in sprints), 2),
        "baseline_wall_s": round(statistics.median(b["wall"] for b in baselines), 2),
        "task_median_s": round(task_s, 3),
        "baseline_task_median_s": round(raw_task, 3),
        "overhead_ratio": round(task_s / raw_task, 3),
        "task_parts_median_s": median_parts(sprints),
        "slot_utilization": round(utilization, 4),
        "api_writes_per_task": round(sum(counted.values()) / tasks, 2),
        "api_writes_per_task_by_resource": {k: round(v / tasks, 2) for k, v in counted.items()},
        "phases": sorted({s["phase"] for s in sprints}),
    }
    if "task_pods" in baselines[0]:
        raw_pod = statistics.median(t for b in baselines for t in b["task_pods"])
        raw_gate = statistics.median(t for b in baselines for t in b["gate_pods"])
        figures |= {
            "raw_pod_median_s": round(raw_pod, 3),
            "raw_gate_pod_median_s": round(raw_gate, 3),
            "overhead_ratio_vs_raw_pod": round(task_s / raw_pod, 3),
        }
    return figures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
