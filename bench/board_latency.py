"""Benchmark: a Task status write -> the dashboard's shared watch -> the browser.

On the local control plane (real etcd + kube-apiserver), with `sprintctl dashboard` as a real process:
- baseline: status write -> the event on a plain Kubernetes watch opened by this script (the floor any
  dashboard can reach);
- websocket: status write -> the board message on a real WebSocket client of the dashboard;
- dom: status write -> the card's DOM updated in real Chromium (Playwright, Debian's chromium).
Each sample writes `status.attempt = i` on one Task and waits for exactly that value to arrive.

Last line: {"p50_s": ..., "p95_s": ..., "samples": N, ...}: p50/p95 are the end-to-end DOM figures
(the WebSocket ones when Chromium is missing); baseline and websocket figures are beside them.
"""

from __future__ import annotations

import json
import os
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

from _board import create_sprint_with_tasks, dashboard, sprint_body  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402
from sprint_orchestrator.kube import TASKS, Kube  # noqa: E402

SAMPLES = int(os.environ.get("BOARD_LATENCY_SAMPLES", "40"))
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
            raise TimeoutError("no event within 20 s")
        time.sleep(0.001)


def main() -> None:
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
    head = percentiles(shown or pushed)
    return {
        **head,
        "samples": len(shown or pushed),
        "measured": "dom" if shown else "websocket",
        "websocket_p50_s": percentiles(pushed)["p50_s"],
        "websocket_p95_s": percentiles(pushed)["p95_s"],
        "baseline_watch_p50_s": percentiles(raw)["p50_s"],
        "baseline_watch_p95_s": percentiles(raw)["p95_s"],
    }


if __name__ == "__main__":
    main()
