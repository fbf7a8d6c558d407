"""Benchmark: a gate's run in a fresh Pod against the same run in a warm Pod (containers.warm_gate_pods,
runtime/podpool.py), on a local cluster with two real nodes (`hack/cluster up --nodes 2`).

Each round, through the Pods runtime's `run_oneshot` as a sprint's gate calls it (a Task as owner, the
workspace over the transfer endpoint, the Pod's NetworkPolicy, the kubelet's verdict): one gate in a
fresh Pod (create, schedule, start, policy wait, fetch, command, the kubelet's report), then the pool is
filled and, once its Pod waits for work, the same gate in the warm Pod (claim, fetch, command, the
kubelet's report). Alternated, so both see the same machine load. The image is the busybox test image
(tests/_node.py), pushed to the cluster's registry and pulled once before anything is measured.

    PATH=$PWD/hack/bin:$PWD/.venv/bin:$PATH CONTAINERS_CONF=$PWD/hack/containers.conf \
        .venv/bin/python bench/warm_gates.py [--runs N]

Last line: {"fresh_gate_median_s", "warm_gate_median_s", "ratio", "fresh_gate_s", "warm_gate_s",
"warm_wait_median_s" (after the fresh gate, until a warm Pod waits for work: 0 when the pool had
refilled meanwhile), "runs"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "operator"))

from _node import build_busybox_image, pods_runtime, two_nodes  # noqa: E402
from nodeset import push_image  # noqa: E402
from sprint_orchestrator.runtime import ANYWHERE, Limits, podpool  # noqa: E402

LIMITS = Limits(cpus=0.5, memory_bytes=64 << 20)
COMMAND = ["/bin/sh", "-c", "test -s tests/ok.txt"]
# a Task of a Sprint in another namespace than the Pods': no ownerReferences (nothing to collect them)
OWNER = {"metadata": {"namespace": "elsewhere", "name": "bench-t1"}, "spec": {"sprintRef": "bench"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-warm-gates-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "tests").mkdir(parents=True)
        (ws / "tests" / "ok.txt").write_text("pass\n")
        with two_nodes(root / "cluster") as nodes:
            tag = f"bench/busybox:{uuid.uuid4().hex[:8]}"
            image = str(push_image(build_busybox_image(), nodes.registry, tag))
            with pods_runtime(nodes, root / "state", "warm-bench", warm_gate_pods=1) as pods:
                key = podpool.key_for(OWNER, image, LIMITS, 120, ANYWHERE)
                assert key is not None
                pods.run_oneshot(image, COMMAND, ws, 120, LIMITS)  # the image pulled onto a node
                fresh, warm, ready = [], [], []
                for _ in range(args.runs):
                    begin = time.perf_counter()
                    result = pods.run_oneshot(image, COMMAND, ws, 120, LIMITS)  # no owner: never pooled
                    fresh.append(time.perf_counter() - begin)
                    if result.exit_code != 0:
                        raise SystemExit(f"a fresh gate failed: {result}")
                    filled = time.perf_counter()
                    pods.pool.fill(key, [])
                    while not pods.pool.ready(key):
                        if time.perf_counter() - filled > 120:
                            raise SystemExit("no warm Pod waited for work within 120 s")
                        time.sleep(0.05)
                    ready.append(time.perf_counter() - filled)
                    begin = time.perf_counter()
                    result = pods.run_oneshot(image, COMMAND, ws, 120, LIMITS, OWNER)
                    warm.append(time.perf_counter() - begin)
                    if result.exit_code != 0:
                        raise SystemExit(f"a warm gate failed: {result}")
                pods.release_warm(key.sprint)
    f, w = statistics.median(fresh), statistics.median(warm)
    print(f"gate in a fresh Pod {f:.2f} s, in a warm Pod {w:.2f} s (medians of {args.runs})", file=sys.stderr)
    print(json.dumps({
        "fresh_gate_median_s": round(f, 3), "warm_gate_median_s": round(w, 3), "ratio": round(w / f, 3),
        "fresh_gate_s": [round(x, 3) for x in fresh], "warm_gate_s": [round(x, 3) for x in warm],
        "warm_wait_median_s": round(statistics.median(ready), 3), "runs": args.runs,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
