"""Benchmark: container exit -> the card's DOM updated in real Chromium, through the operator, the API
server, the dashboard's shared watch and its WebSocket.

Headline (needs Podman): a real operator runs a sprint of BOARD_LATENCY_TASKS (60) independent
demo-team tasks (team.type demo, each writing one file) in real containers, with the board open in
Chromium (Playwright driving Debian's chromium, no browser download). Per task: the container's `died`
time from `podman events` -> the first DOM mutation showing its card's container as exited (a
MutationObserver in the page, Date.now()). Beside it, the same exits seen by a Python WebSocket client.

Stages, on the same control plane and dashboard, each write `status.attempt = i` on one Task and wait
for exactly that value (BOARD_LATENCY_SAMPLES, 40):
- baseline: status write -> the event on a plain Kubernetes watch of our own (the floor any dashboard
  can reach);
- write_websocket: status write -> the board message on a WebSocket client of the dashboard;
- write_dom: status write -> the card's DOM updated in Chromium.

Last line: {"p50_s": ..., "p95_s": ..., "samples": N, "measured": ..., ...}: p50/p95 are container exit
-> Chromium DOM (status write -> DOM with --no-containers), the other stages' figures beside them.
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

from _board import create_sprint_with_tasks, dashboard, sprint_body  # noqa: E402
from localcluster import BIN, LocalCluster  # noqa: E402
from sprint_orchestrator.kube import SPRINTS, TASKS, Kube  # noqa: E402

SAMPLES = int(os.environ.get("BOARD_LATENCY_SAMPLES", "40"))
DEMO_TASKS = int(os.environ.get("BOARD_LATENCY_TASKS", "60"))
EXITED = ("exited", "oom-killed", "timed-out", "removed")
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")
NAMESPACE = "bench"
SPRINT = "lat-1"
TASK = "lat-1-t0"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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

    out = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
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


# In the page: per card, the wall time (ms) the DOM first shows its container exited, counted only for
# cards the DOM showed before with a container not yet exited (so a page load never makes a sample).
DOM_EXITS = """
window.__exits = {}; window.__before = {};
const EXITED = new Set(EXITED_STATES);
new MutationObserver(() => {
  const now = Date.now();
  for (const card of document.querySelectorAll(".card[data-task]")) {
    const span = card.querySelector("[class^='health-']");
    if (!span) continue;
    const id = card.dataset.task, health = span.className.slice("health-".length);
    if (!EXITED.has(health)) window.__before[id] = true;
    else if (window.__before[id] && !(id in window.__exits)) window.__exits[id] = now;
  }
}).observe(document, {childList: true, subtree: true, characterData: true, attributes: true});
""".replace("EXITED_STATES", json.dumps(list(EXITED)))


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


def demo_team_sprint(tmp: Path, name: str, tasks: int) -> dict[str, Any]:
    """`tasks` independent demo-team tasks, each writing one file (a real change the operator commits
    and merges), on a fresh bare repository."""
    recipes, seed, bare = tmp / "recipes", tmp / "seed", tmp / "target.git"
    for i in range(tasks):
        (recipes / f"t{i:02d}" / "files").mkdir(parents=True)
        (recipes / f"t{i:02d}" / "files" / f"t{i:02d}.txt").write_text(f"task {i}\n")
    seed.mkdir()
    (seed / "README.md").write_text("board latency\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial commit"]):
        subprocess.run(["git", "-C", str(seed), *args], check=True, capture_output=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", str(bare), "main"], check=True, capture_output=True)
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name},
        "spec": {
            "repository": {"url": str(bare)},
            "team": {"type": "demo", "recipes": str(recipes)},
            "maxParallelTasks": 5,
            "tasks": [
                {"id": f"t{i:02d}", "title": f"write file {i}", "filesToModify": [f"files/t{i:02d}.txt"]}
                for i in range(tasks)
            ],
        },
    }


def demo(local: LocalCluster, kube: Kube, tmp: Path) -> tuple[list[float], list[float]]:
    """Container exit -> Chromium DOM and -> a WebSocket client, for every task of a demo-team sprint
    run by a real operator in real containers."""
    from _board import operator_config
    from _e2e import start_operator, stop_operator

    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "hack" / "containers.conf"))
    work = tmp / "demo"
    work.mkdir()
    with dashboard(local.kubeconfig, NAMESPACE, tmp) as base:
        proc = start_operator(local, NAMESPACE, work / "state", work / "op.log", **operator_config(work))
        try:
            return demo_run(kube, base, work, "exits-1")
        finally:
            stop_operator(proc)


def demo_run(kube: Kube, base: str, tmp: Path, name: str) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    manifest = demo_team_sprint(tmp, name, DEMO_TASKS)
    started, seen, stop = time.time(), {}, threading.Event()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.add_init_script(DOM_EXITS)
        kube.create(SPRINTS, NAMESPACE, manifest)
        _wait(lambda: kube.get(SPRINTS, NAMESPACE, name) is not None)
        watcher = threading.Thread(target=exits_seen, args=(base, name, stop, seen), daemon=True)
        watcher.start()
        page.goto(f"{base}/board/{name}")
        page.wait_for_function(
            f"Object.keys(window.__exits).length >= {DEMO_TASKS}", timeout=1800_000, polling=500
        )
        shown: dict[str, float] = {k: v / 1000 for k, v in page.evaluate("window.__exits").items()}
        browser.close()
    _wait(lambda: len(seen) == DEMO_TASKS, timeout=60)
    stop.set()
    watcher.join(timeout=5)
    _wait(
        lambda: ((kube.get(SPRINTS, NAMESPACE, name) or {}).get("status") or {}).get("phase") in TERMINAL, 600
    )
    phase = (kube.get(SPRINTS, NAMESPACE, name) or {})["status"]["phase"]
    print(f"demo-team sprint {name}: {phase}", file=sys.stderr)
    deaths = died(name, started)
    dom_s = [shown[t] - deaths[t] for t in shown if t in deaths]
    ws_s = [seen[t] - deaths[t] for t in seen if t in deaths]
    return dom_s, ws_s


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
    local.apply_crds(REPO / "crds")
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
    exit_dom, exit_ws = demo(local, kube, tmp) if "--no-containers" not in sys.argv else ([], [])
    if exit_dom:
        print(f"container exit -> chromium DOM: {percentiles(exit_dom)}", file=sys.stderr)
        print(f"container exit -> websocket: {percentiles(exit_ws)}", file=sys.stderr)
    head = exit_dom or shown or pushed
    extra: dict[str, Any] = {}
    for label, values in (
        ("exit_websocket", exit_ws),
        ("write_dom", shown),
        ("write_websocket", pushed),
        ("baseline_watch", raw),
    ):
        if values:
            figures = percentiles(values)
            extra |= {f"{label}_p50_s": figures["p50_s"], f"{label}_p95_s": figures["p95_s"]}
    return {
        **percentiles(head),
        "samples": len(head),
        "measured": "container exit -> chromium DOM"
        if exit_dom
        else "status write -> chromium DOM"
        if shown
        else "status write -> websocket",
        **extra,
        "exit_websocket_samples": len(exit_ws),
    }


if __name__ == "__main__":
    main()
