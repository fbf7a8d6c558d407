"""`sprintctl status SPRINT [--watch]`: the sprint's phase, a progress bar and one line per task."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .. import lifecycle
from ..kube import Kube
from ._resources import add_target, connect, get_sprint

HELP = "show a sprint's progress and its tasks (--watch: until it ends)"
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, task=False)
    parser.add_argument("--watch", "-w", action="store_true", help="refresh until the sprint ends")
    parser.add_argument("--timeout", type=float, default=3600.0, help="with --watch: give up after N seconds")


def render(sprint: dict[str, Any], tasks: list[dict[str, Any]], width: int = 30) -> str:
    status = sprint.get("status") or {}
    total = int(status.get("total") or len(tasks) or 1)
    done = int((status.get("columns") or {}).get("completed") or 0)
    filled = int(width * done / total) if total else 0
    tokens = status.get("tokens") or {}
    lines = [
        f"sprint {sprint['metadata']['name']}: {status.get('phase') or 'Pending'}  "
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  "
        f"tokens {tokens.get('used', 0)}/{tokens.get('budget', '-')}  {status.get('message') or ''}",
        f"  {'TASK':<16}{'COLUMN':<13}{'PHASE':<11}{'ATTEMPT':<9}{'TOKENS':<10}{'CONTAINER':<12}REASON",
    ]
    for task in sorted(tasks, key=lambda t: t["metadata"]["name"]):
        st = task.get("status") or {}
        actual = (st.get("tokens") or {}).get("actual")
        lines.append(
            f"  {task['spec']['taskId']:<16}{st.get('column') or 'ready':<13}"
            f"{st.get('phase') or 'Pending':<11}"
            f"{st.get('attempt') or 0!s:<9}{'-' if actual is None else actual!s:<10}"
            f"{st.get('containerHealth') or 'none':<12}{(st.get('reason') or '')[:40]}"
        )
    return "\n".join(lines)


def waiting_for_review(tasks: list[dict[str, Any]]) -> list[str]:
    """Task ids in review when nothing else can move: the sprint waits for a human."""
    phases = {t["spec"]["taskId"]: (t.get("status") or {}).get("phase") or "Pending" for t in tasks}
    review = sorted(k for k, v in phases.items() if v == "Review")
    return review if lifecycle.waits_for_human(phases.values()) else []


def _snapshot(kube: Kube, args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sprint = get_sprint(kube, args)
    return sprint, kube.tasks_of(args.namespace, args.sprint)


def run(args: argparse.Namespace) -> int:
    kube = connect(args)
    sprint, tasks = _snapshot(kube, args)
    if not args.watch:
        print(render(sprint, tasks))
        return 0
    deadline = time.monotonic() + args.timeout
    interactive = sys.stdout.isatty()
    last = ""
    while True:
        text = render(sprint, tasks)
        if text != last:
            if interactive:
                sys.stdout.write("\033[H\033[J")
            print(text if interactive else text + "\n", flush=True)
            last = text
        phase = (sprint.get("status") or {}).get("phase")
        if phase in TERMINAL:
            return 0 if phase in ("Completed", "Partial") else 1
        review = waiting_for_review(tasks)
        if review:
            print(
                f"waiting for a human: {', '.join(review)} in review "
                f"(sprintctl approve|retry {args.sprint} TASK -n {args.namespace})"
            )
            return 0
        if time.monotonic() > deadline:
            print(f"timed out after {args.timeout:.0f}s", file=sys.stderr)
            return 3
        time.sleep(1.0)
        sprint, tasks = _snapshot(kube, args)
