"""Benchmark: a Task status write -> the dashboard's shared watch -> the browser.

On the local control plane (real etcd + kube-apiserver), with `sprintctl dashboard` as a real process:
- baseline: status write -> the event on a plain Kubernetes watch opened by this script (the floor any
  dashboard can reach);
- websocket: status write -> the board message on a real WebSocket client of the dashboard;
- dom: status write -> the card's DOM updated in real Chromium (Playwright, Debian's chromium).
Each sample writes `status.attempt = i` on one Task and waits for exactly that value to arrive.
- container exit (with --demo, needs Podman): the operator runs examples/sprint.yaml (6 tasks) in real
  containers, BOARD_LATENCY_DEMO_RUNS times; per task, the container's `died` time from `podman
  events` -> the first board message on a WebSocket client showing the task's container as exited.

Last line: {"p50_s": ..., "p95_s": ..., "samples": N, ...}: p50/p95 are container exit -> browser
with --demo, else status write -> Chromium DOM (the WebSocket ones when Chromium is missing); the
other stages' figures are beside them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests"))

from websockets.sync.client import connect  # noqa: E402

from _board import create_sprint_with_tasks, dashboard, demo_sprint, sprint_body  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402
from sprint_orchestrator.kube import SPRINTS, TASKS, Kube  # noqa: E402

SAMPLES = int(os.environ.get("BOARD_LATENCY_SAMPLES", "40"))
DEMO_RUNS = int(os.environ.get("BOARD_LATENCY_DEMO_RUNS", "2"))
EXITED = ("exited", "oom-killed", "timed-out", "removed")
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")
NAMESPACE = "bench"
SPRINT = "lat-1"
TASK = "lat-1-t0"
CHROMIUM = "/usr/bin/chromium"


def write(kube: Kube, attempt: int) -> float:
    started = time.perf_counter()
    kube.patch_status(TASKS, NAMESPACE, TASK, {"attempt": attempt, "column": "in-progress"})
    return started


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_s": round(statistics.median(ordered), 4), "p95_s": round(p95, 4)}


def baseline(kube: Kube, first: int) -> list[float]:
    """Status write -> event on a raw watch of our own."""
    _, version = kube.list_versioned(TASKS, NAMESPACE)
    seen: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        for _, obj in kube.watch(TASKS, NAMESPACE, version, timeout_seconds=120):
            attempt = (obj.get("status") or {}).get("attempt")
            if isinstance(attempt, int) and attempt not in seen:
                seen[attempt] = time.perf_counter()
            if done.is_set() or len(seen) >= SAMPLES:
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)
    out = []
    for i in range(first, first + SAMPLES):
        started = write(kube, i)
        _wait(lambda i=i: i in seen)
        out.append(seen[i] - started)
    done.set()
    return out


def websocket(kube: Kube, base: str, first: int) -> list[float]:
    out = []
    with connect(base.replace("http", "ws") + f"/ws/sprints/{SPRINT}") as socket:
        socket.recv(timeout=20)
        for i in range(first, first + SAMPLES):
            started = write(kube, i)
            while True:
                message = json.loads(socket.recv(timeout=20))
                cards = message.get("board", {}).get("cards", [])
                if any(c["task_id"] == "t0" and c["attempt"] == i for c in cards):
                    out.append(time.perf_counter() - started)
                    break
    return out


def dom(kube: Kube, base: str, first: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    out = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page()
        page.goto(f"{base}/board/{SPRINT}")
        page.wait_for_selector('.card[data-task="t0"]')
        time.sleep(0.5)
        for i in range(first, first + SAMPLES):
            started = write(kube, i)
            page.wait_for_selector(f'.card[data-task="t0"][data-attempt="{i}"]', timeout=20_000)
            out.append(time.perf_counter() - started)
        browser.close()
    return out


def _wait(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing within {timeout:.0f} s")
        time.sleep(0.001)


def exits_seen(base: str, sprint: str, stop: threading.Event, seen: dict[str, float]) -> None:
    """Record, per task, when a board message first shows its container as exited."""
    with connect(base.replace("http", "ws") + f"/ws/sprints/{sprint}") as socket:
        while not stop.is_set():
            try:
                message = json.loads(socket.recv(timeout=1))
            except TimeoutError:
                continue
            now = time.time()
            for card in message.get("board", {}).get("cards", []):
                if card["container_health"] in EXITED and card["task_id"] not in seen:
                    seen[card["task_id"]] = now


def died(sprint: str, since: float) -> dict[str, float]:
    """task id -> wall time its task container died, from Podman's own event log."""
    out = subprocess.run(
        [
            "podman",
            "events",
            "--stream=false",
            "--since",
            str(int(since) - 1),
            "--format",
            "json",
            "--filter",
            "event=died",
            "--filter",
            f"label=sprintorchestrator.dev/sprint={sprint}",
            "--filter",
            "label=sprintorchestrator.dev/role=task",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    times: dict[str, float] = {}
    for line in out.splitlines():
        event = json.loads(line)
        stamp = dt.datetime.fromisoformat(event["Time"][:26].rstrip("Z") + "+00:00").timestamp()
        times.setdefault(event["Attributes"]["sprintorchestrator.dev/task"], stamp)
    return times


def demo(local: LocalCluster, kube: Kube, tmp: Path) -> list[float]:
    """Each run gets its own operator (a target repository and trees directory of its own)."""
    from _board import operator_config
    from _e2e import start_operator, stop_operator

    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    out: list[float] = []
    with dashboard(local.kubeconfig, NAMESPACE, tmp) as base:
        for run_no in range(DEMO_RUNS):
            work = tmp / f"run{run_no}"
            work.mkdir()
            proc = start_operator(local, NAMESPACE, work / "state", work / "op.log", **operator_config(work))
            try:
                out += demo_run(kube, base, work, f"textstats-r{run_no}")
            finally:
                stop_operator(proc)
    return out


def demo_run(kube: Kube, base: str, tmp: Path, name: str) -> list[float]:
    manifest = demo_sprint(tmp, REPO)
    manifest["metadata"]["name"] = name
    started, seen, stop = time.time(), {}, threading.Event()
    kube.create(SPRINTS, NAMESPACE, manifest)
    _wait(lambda: kube.get(SPRINTS, NAMESPACE, name) is not None)
    watcher = threading.Thread(target=exits_seen, args=(base, name, stop, seen), daemon=True)
    watcher.start()
    _wait(lambda: len(seen) == len(manifest["spec"]["tasks"]), timeout=600)
    stop.set()
    watcher.join(timeout=5)
    # Let the sprint finish (one sprint at a time per operator) and remove it before the next run.
    _wait(
        lambda: ((kube.get(SPRINTS, NAMESPACE, name) or {}).get("status") or {}).get("phase") in TERMINAL, 600
    )
    kube.delete(SPRINTS, NAMESPACE, name)
    deaths = died(name, started)
    return [seen[t] - deaths[t] for t in seen if t in deaths]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster and children are stopped
    with tempfile.TemporaryDirectory(prefix="board-latency-") as tmp:
        local = LocalCluster(Path(tmp) / "cluster")
        local.up()
        try:
            figures = run(local, Path(tmp))
        finally:
            local.down()
    print(json.dumps(figures))


def run(local: LocalCluster, tmp: Path) -> dict[str, Any]:
    kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig)]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(REPO / "crds")], check=True, capture_output=True
    )
    for crd in ("sprints", "tasks"):
        subprocess.run(
            [
                *kubectl,
                "wait",
                "--for=condition=Established",
                f"crd/{crd}.sprintorchestrator.dev",
                "--timeout=60s",
            ],
            check=True,
            capture_output=True,
        )
    subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True)
    kube = Kube.from_kubeconfig(str(local.kubeconfig))
    create_sprint_with_tasks(kube, NAMESPACE, sprint_body(SPRINT, tasks=1))
    raw = baseline(kube, 1)
    print(f"baseline (raw watch): {percentiles(raw)}", file=sys.stderr)
    with dashboard(local.kubeconfig, NAMESPACE, tmp) as base:
        pushed = websocket(kube, base, 1000)
        print(f"websocket: {percentiles(pushed)}", file=sys.stderr)
        shown = dom(kube, base, 2000) if Path(CHROMIUM).exists() else []
        if shown:
            print(f"dom (chromium): {percentiles(shown)}", file=sys.stderr)
    exits = demo(local, kube, tmp) if "--demo" in sys.argv else []
    if exits:
        print(f"container exit -> websocket: {percentiles(exits)}", file=sys.stderr)
    head = exits or shown or pushed
    return {
        **percentiles(head),
        "samples": len(head),
        "measured": "container-exit" if exits else "dom" if shown else "websocket",
        **(
            {"dom_p50_s": percentiles(shown)["p50_s"], "dom_p95_s": percentiles(shown)["p95_s"]}
            if shown
            else {}
        ),
        "websocket_p50_s": percentiles(pushed)["p50_s"],
        "websocket_p95_s": percentiles(pushed)["p95_s"],
        "baseline_watch_p50_s": percentiles(raw)["p50_s"],
        "baseline_watch_p95_s": percentiles(raw)["p95_s"],
    }


if __name__ == "__main__":
    main()
