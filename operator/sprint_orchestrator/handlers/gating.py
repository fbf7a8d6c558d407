"""Quality gates: the sprint's trusted test commands, each in a fresh container on a task's committed tree.

The gate never runs what the task may have rewritten to pass: test files come from the sprint branch
unless the task was asked to modify them (DESIGN.md §9).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..runtime import Limits


def run_gates(
    engine: Any,
    runtime: Any,
    image: str,
    commit: str,
    sprint_head: str,
    commands: list[str],
    files_to_modify: list[str],
    limits: Limits,
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Run each gate command in a fresh container on the task's committed tree.

    Test files come from the sprint branch (trusted) unless the task was asked to modify them:
    every path that differs between the task commit and the sprint head, is not in filesToModify,
    and looks like a test is taken from the sprint head.
    """
    results: list[dict[str, Any]] = []
    if not commands:
        return results
    with tempfile.TemporaryDirectory(prefix="sprint-gate-") as tmp:
        tree = Path(tmp) / "tree"
        overlay = trusted_overlay(engine, commit, sprint_head, files_to_modify)
        engine.export_tree(commit, tree, overlay)
        for index, command in enumerate(commands):
            started = time.monotonic()
            outcome = runtime.run_oneshot(image, ["/bin/sh", "-c", command], tree, timeout_s, limits)
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


def trusted_overlay(engine: Any, commit: str, sprint_head: str, files_to_modify: list[str]) -> dict[str, str]:
    allowed = set(files_to_modify)
    overlay: dict[str, str] = {}
    for path in engine.changed_paths(sprint_head, commit):
        name = path.rsplit("/", 1)[-1]
        is_test = path.startswith("tests/") or name.startswith("test_") or name.endswith("_test.py")
        if is_test and path not in allowed:
            overlay[path] = sprint_head
    return overlay
