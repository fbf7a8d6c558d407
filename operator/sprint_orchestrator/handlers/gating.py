"""Quality gates: the sprint's trusted test commands, each in a fresh container, on a trusted tree.

A gate never runs what the task could have rewritten to pass it (DESIGN.md §9): the tree is the sprint
branch's head, with only the files the task was asked to modify (`filesToModify`) taken from its
commit. A root `pytest.py`, a `conftest.py`, runner options or a `sitecustomize.py` the team wrote
outside its declared files never reach the gate; inside them, protected paths (protected.py) send the
task to a human before it merges. Integration tests run the sprint head as it is.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import protected
from ..errors import InfrastructureFailure, PodRejected
from ..faults import checkpoint
from ..model import SprintSpec
from ..runtime import ANYWHERE, Limits, Scheduling
from ..runtime.podevents import HANDLER_MISSING
from ..stamps import now_iso


def scheduling_of(spec: SprintSpec) -> Scheduling:
    """Where the sprint's Pods may run (spec.container: placement.py); nothing set -> anywhere."""
    c = spec.container
    if c is None:
        return Scheduling()
    tolerations = tuple(t.pod_field() for t in c.tolerations or [])
    return Scheduling(c.runtime_class_name, dict(c.node_selector or {}), tolerations, c.priority_class_name)


def gate_overlay(engine: Any, base: str, commit: str, files_to_modify: list[str]) -> dict[str, str]:
    """The task's declared files that it changed (from `base`, where it started, to its `commit`): each
    comes from the commit, deleted when the commit deleted it. Nothing else of the task's reaches a gate."""
    declared = set(files_to_modify)
    return {path: commit for path in engine.changed_paths(base, commit) if path in declared}


def protected_changes(engine: Any, base: str, changed: list[str], extra: list[str]) -> list[str]:
    """The changed paths (declared or not) that need a human's approval before the task merges."""
    existed = set(engine.existing_paths(base, changed)) if changed else set()
    return protected.protected_changes(changed, existed, extra)


def run_gates(
    engine: Any,
    runtime: Any,
    image: str,
    tree_commit: str,
    overlay: Mapping[str, str],
    commands: list[str],
    limits: Limits,
    timeout_s: float,
    owner: Mapping[str, Any] | None = None,
    scheduling: Scheduling = ANYWHERE,
) -> list[dict[str, Any]]:
    """Run each command in a fresh container on `tree_commit` with `overlay` paths from other commits.
    InfrastructureFailure when the cluster ended one (evicted, image not pulled): that says nothing
    about the command, so it is not a failed gate."""
    results: list[dict[str, Any]] = []
    if not commands:
        return results
    with tempfile.TemporaryDirectory(prefix="sprint-gate-") as tmp:
        tree = Path(tmp) / "tree"
        engine.export_tree(tree_commit, tree, dict(overlay))
        for index, command in enumerate(commands):
            started = time.monotonic()
            outcome = runtime.run_oneshot(
                image, ["/bin/sh", "-c", command], tree, timeout_s, limits, owner, scheduling
            )
            if outcome.infrastructure == HANDLER_MISSING:  # a retry meets the same node configuration
                last = (outcome.log_tail.strip().splitlines() or [HANDLER_MISSING])[-1]
                raise PodRejected(f"the run of {command!r} cannot start: {last}")
            if outcome.infrastructure:
                raise InfrastructureFailure(
                    f"{outcome.infrastructure}: the run of {command!r} was ended by the cluster: "
                    f"{outcome.log_tail.strip().splitlines()[-1] if outcome.log_tail.strip() else ''}"
                )
            results.append(
                {
                    "name": f"test-{index + 1}",
                    "command": command,
                    "exitCode": -1 if outcome.exit_code is None else int(outcome.exit_code),
                    "durationSeconds": round(time.monotonic() - started, 3),
                    "passed": outcome.exit_code == 0,
                    "logTail": outcome.log_tail[-2000:],
                }
            )
        shutil.rmtree(tree, ignore_errors=True)
    return results


def verdict(
    results: list[dict[str, Any]], out_of_scope: list[str], scope_policy: str, protected_paths: list[str]
) -> tuple[str, str]:
    """("", "") when the task may merge, else (reason, why) for Review. Gate failures come first; then
    protected paths (whatever the policy); then out-of-scope changes under the `review` policy."""
    failed = next((r["command"] for r in results if not r["passed"]), None)
    if failed is not None:
        return "GateFailed", f"gate failed: {failed}"
    if protected_paths:
        return "ProtectedPaths", f"changes protected paths: {', '.join(protected_paths[:10])}"
    if out_of_scope and scope_policy == "review":
        return "OutOfScope", f"changes outside filesToModify: {', '.join(out_of_scope[:10])}"
    return "", ""


async def gate_task(runner: Any) -> None:
    """The Gating phase of a task: run its gates on the trusted tree, then merged in its turn, or Review."""
    status, definition, spec = runner.status, runner.definition, runner.spec
    engine = await runner.rec.engine(spec)
    runtime = await runner.ctx.get_runtime()
    commit = str(status["commit"])
    image = str((runner.body.get("status") or {}).get("image") or runner.rec.default_base_image())
    sprint_head = str(await asyncio.to_thread(engine.head, f"sprint/{runner.sprint_id}"))
    base = str(status.get("baseCommit") or sprint_head)
    overlay = await asyncio.to_thread(gate_overlay, engine, base, commit, list(definition.files_to_modify))
    limits, timeout_s = runner.limits()
    commands = list(definition.test_requirements)
    placed = scheduling_of(spec)
    args = (engine, runtime, image, sprint_head, overlay, commands, limits, timeout_s, runner.task, placed)
    results = await asyncio.to_thread(run_gates, *args)
    checkpoint("gates-passed-before-status")
    out_of_scope = list(status.get("outOfScope") or [])
    reason, why = verdict(
        results, out_of_scope, str(spec.policy.out_of_scope_changes), list(status.get("protectedPaths") or [])
    )
    if not reason:
        await runner.merge({"gates": results, "gatedAt": now_iso(), "reason": "", "error": ""})
        return
    rounds = int(status.get("autoFixRounds") or 0)
    if reason == "GateFailed" and spec.auto_fix is not None and rounds < spec.auto_fix.max_rounds:
        await auto_fix(runner, results, rounds + 1, spec.auto_fix.max_rounds)
        return
    await runner.patch(
        {
            "phase": "Review",
            "column": "review",
            "gates": results,
            "reason": reason,
            "error": why,
            "recoveryAction": "sprintctl approve or sprintctl retry",
        }
    )
    runner.rec.event(runner.body, "TaskNeedsReview", f"task {runner.task_id}: {why}", warn=True)


def failing_output(results: list[dict[str, Any]], limit: int = 6000) -> str:
    """What the team reads after a failed gate: each failing command, its exit code and log tail."""
    parts = [
        f"Gate `{r['command']}` failed (exit {r['exitCode']}):\n{r.get('logTail') or ''}".rstrip()
        for r in results
        if not r["passed"]
    ]
    return "\n\n".join(parts)[-limit:]


async def auto_fix(runner: Any, results: list[dict[str, Any]], round_: int, max_rounds: int) -> None:
    """spec.autoFix: the failed gates' output goes back to the team as a review, and a new attempt
    continues from this commit (as a reviewer's request for changes does), before any human is asked."""
    status = runner.status
    attempt = int(status.get("attempt") or 1)
    record = {
        "attempt": attempt,
        "by": "autoFix",
        "time": now_iso(),
        "commit": status.get("commit"),
        "message": f"Automatic feedback, round {round_} of {max_rounds}: the quality gates failed.\n\n"
        + failing_output(results),
        "comments": [],
        "tokens": int((status.get("tokens") or {}).get("actual") or 0),
    }
    await runner.patch(
        {
            "phase": "Ready",
            "column": "ready",
            "gates": results,
            "reason": "AutoFix",
            "error": f"gate failed; sent back to the team (auto-fix round {round_}/{max_rounds})",
            "continueFrom": status.get("commit"),
            "reviews": [*list(status.get("reviews") or [])[-19:], record],
            "autoFixRounds": round_,
            "maxAttempts": max(int(status.get("maxAttempts") or 0), attempt + 1),
            "nextRetryAt": None,
        }
    )
    runner.rec.event(
        runner.body,
        "AutoFixRequested",
        f"task {runner.task_id}: gate failed on attempt {attempt}; auto-fix round {round_}/{max_rounds} "
        f"continues from {str(status.get('commit'))[:12]}",
        warn=True,
    )
