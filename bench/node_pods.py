"""Benchmark: real nodes from hack/ (`hack/cluster up --nodes 2`).

In one run, with warm caches:
- baseline: `up` of the control plane alone (etcd, kube-apiserver, kube-controller-manager);
- nodes: `up --nodes 2` (plus kube-scheduler, registry, 2 x containerd + kubelet + kube-router), until
  both nodes are Ready;
- RSS (VmRSS) of each node process, the registry and the scheduler, after the Pods below ran;
- Pod start latency, create -> Running (the Pod's Ready condition time is second-granular, so this
  script polls and stamps each Pod when it first shows Running): a single Pod alone (baseline, 5
  samples), then 50 Pods created at once (a locally built image, imported into both nodes).

Last line: {"up_nodes2_s": ..., "up_control_plane_s": ..., "pod_start_p50_s": ..., ...}.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests"))

from _node import build_busybox_image, pod  # noqa: E402
from localcluster import LocalCluster  # noqa: E402
from nodeset import podman_archive  # noqa: E402

PODS = int(os.environ.get("NODE_BENCH_PODS", "50"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_pods(cluster: LocalCluster, ns: str, names: list[str], image: str) -> list[float]:
    """Create the Pods in one request; return each one's create -> Running seconds."""
    items = [pod(name, image, "sleep 3600", restart="Always") for name in names]
    created = time.perf_counter()
    cluster.kubectl(
        "-n", ns, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    seen: dict[str, float] = {}
    deadline = created + 300
    while len(seen) < len(names) and time.perf_counter() < deadline:
        out = json.loads(cluster.kubectl("-n", ns, "get", "pods", "-o", "json"))
        now = time.perf_counter()
        for item in out["items"]:
            name = item["metadata"]["name"]
            if name in names and name not in seen and item["status"].get("phase") == "Running":
                seen[name] = now - created
        time.sleep(0.1)
    if len(seen) < len(names):
        raise SystemExit(f"only {len(seen)} of {len(names)} Pods Running within 300s")
    return [seen[n] for n in names]


def main() -> None:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="node-bench-") as tmp:
        base = LocalCluster(Path(tmp) / "cp")
        started = time.perf_counter()
        base.up()
        figures["up_control_plane_s"] = round(time.perf_counter() - started, 2)
        base.down()

        cluster = LocalCluster(Path(tmp) / "n2", nodes=2)
        started = time.perf_counter()
        state = cluster.up()
        figures["up_nodes2_s"] = round(time.perf_counter() - started, 2)
        try:
            image = build_busybox_image()
            archive = podman_archive(image)
            node_set = cluster.node_set()
            assert node_set is not None
            for node in node_set.nodes:
                node.import_image(archive)
            cluster.kubectl("create", "namespace", "bench")
            while "serviceaccount/default" not in cluster.kubectl("-n", "bench", "get", "sa", "-o", "name"):
                time.sleep(0.2)
            single = [start_pods(cluster, "bench", [f"solo-{i}"], image)[0] for i in range(5)]
            many = start_pods(cluster, "bench", [f"p-{i}" for i in range(PODS)], image)
            pids = dict(state["pids"])  # type: ignore[call-overload]
            figures["rss_mb"] = {
                name: rss_mb(pid)
                for name, pid in sorted(pids.items())
                if any(
                    k in name
                    for k in ("kubelet", "containerd", "registry", "kube-router", "kube-proxy", "scheduler")
                )
            }
            figures |= {
                "pod_start_single_p50_s": round(statistics.median(single), 2),
                "pod_start_p50_s": round(statistics.median(many), 2),
                "pod_start_p95_s": round(percentile(many, 0.95), 2),
                "pod_start_max_s": round(max(many), 2),
                "pods": PODS,
            }
        finally:
            cluster.down()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
