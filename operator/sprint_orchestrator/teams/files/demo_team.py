"""The deterministic demo task team (stdlib only; runs in the base image).

Reads /workspace/.sprint/task.json, copies the recipe files of its task from /opt/demo-recipes/<id>/
into /workspace (a task without a recipe gets a note, notes/<id>.md, so every demo task makes a real
change for the operator to commit, gate and merge), runs the task's test commands, writes
/workspace/RESULTS.md and the token usage of its five "agents" to /artifacts/usage.jsonl. Token
counts are derived from the sizes of what it read and wrote, so the same task always reports the
same usage. Test failures are reported, not raised: it exits 0 and the operator's quality gates
decide. SPRINT_DEMO_SLEEP=N makes it sleep N seconds first (tests use it to keep a task running).

Review: when TASK.md has a "Review: changes requested" section, the workspace already holds the
previous attempt's files; the team then writes, for every file a review comment is anchored to, the
recipe's fixed version of it (<recipe>/.review/<path>) when there is one, and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WORKSPACE = Path(os.environ.get("SPRINT_WORKSPACE", "/workspace"))
ARTIFACTS = Path(os.environ.get("SPRINT_ARTIFACTS", "/artifacts"))
RECIPES = Path(os.environ.get("SPRINT_RECIPES", "/opt/demo-recipes"))
MODEL = "demo-team-1"
TEST_TIMEOUT_S = 600


def load_task() -> dict[str, Any]:
    path = WORKSPACE / ".sprint" / "task.json"
    if path.is_file():
        task: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return task
    return {"id": os.environ.get("SPRINT_TASK_ID", ""), "title": "", "test_requirements": []}


REVIEW_SECTION = "\n## Review: changes requested\n"
ANCHOR = re.compile(r"^- Comment \d+ on `([^`:]+)(?::\d+)?`:$", re.MULTILINE)


def reviewed_paths(task_md: str) -> list[str]:
    """The files the review comments of TASK.md are anchored to (`path:line` or `path`)."""
    _, found, section = task_md.partition(REVIEW_SECTION)
    return sorted(set(ANCHOR.findall(section))) if found else []


def apply_review(recipe: Path, paths: list[str]) -> list[tuple[str, int]]:
    """Write the recipe's fixed version of each reviewed file that has one (<recipe>/.review/PATH)."""
    written = []
    fixes = recipe / ".review"
    for rel in paths:
        src = fixes / rel
        if ".." in rel.split("/") or not src.is_file():
            continue
        dst = WORKSPACE / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append((rel, src.stat().st_size))
    return written


def copy_recipe(recipe: Path) -> list[tuple[str, int]]:
    """Copy every file of the recipe (not its .review/ fixes) into the workspace; return (relative
    path, size) in order."""
    written = []
    for src in sorted(p for p in recipe.rglob("*") if p.is_file()):
        rel = src.relative_to(recipe)
        if rel.parts[0] == ".review":
            continue
        dst = WORKSPACE / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append((rel.as_posix(), src.stat().st_size))
    return written


def write_note(task: dict[str, Any]) -> list[tuple[str, int]]:
    """No recipe: write notes/<id>.md with the task's title (its id is a safe path component)."""
    task_id = str(task.get("id") or "task")
    text = f"# {task_id}\n\n{task.get('title', '')}\n"
    dst = WORKSPACE / "notes" / f"{task_id}.md"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text, encoding="utf-8")
    return [(f"notes/{task_id}.md", len(text.encode()))]


def run_tests(commands: list[str]) -> list[dict[str, Any]]:
    results = []
    for command in commands:
        try:
            proc = subprocess.run(
                command, shell=True, cwd=WORKSPACE, capture_output=True, text=True, timeout=TEST_TIMEOUT_S
            )
            code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            code, output = -1, f"timed out after {TEST_TIMEOUT_S} s"
        results.append({"command": command, "exit_code": code, "output": output[-1500:]})
    return results


def usage_lines(task_md: int, written: list[tuple[str, int]], tests: list[str]) -> list[dict[str, Any]]:
    """Five agents' usage, from sizes only (about 4 bytes a token): deterministic by construction."""

    def kind(path: str) -> str:
        if path.endswith(".md") or path.startswith("docs/"):
            return "docs"
        return "test" if path.startswith("tests/") or "/test_" in path else "source"

    size = {k: sum(n for p, n in written if kind(p) == k) for k in ("source", "test", "docs")}
    total = sum(size.values())
    counts = {
        "lead_agent": (400 + task_md // 4, 60 + 20 * len(written)),
        "implementation": (300 + task_md // 4, size["source"] // 4),
        "testing": (200 + size["source"] // 4, size["test"] // 4 + 40 * len(tests)),
        "review": (150 + total // 4, 80),
        "documentation": (100 + total // 8, 50 + size["docs"] // 4),
    }
    return [
        {
            "category": cat,
            "model": MODEL,
            "input_tokens": i,
            "output_tokens": o,
            "cache_read_tokens": 0,
            "cache_creation_tokens": 0,
        }
        for cat, (i, o) in counts.items()
    ]


def results_md(task: dict[str, Any], written: list[tuple[str, int]], tests: list[dict[str, Any]]) -> str:
    lines = [f"# Results: {task.get('id')} — {task.get('title', '')}", ""]
    failed = [t for t in tests if t["exit_code"] != 0]
    lines += [f"Status: {'tests failed' if failed else 'done'}", "", "## Files written", ""]
    lines += [f"- `{path}` ({size} bytes)" for path, size in written]
    lines += ["", "## Tests", ""]
    for t in tests:
        verdict = "passed" if t["exit_code"] == 0 else f"FAILED (exit {t['exit_code']})"
        lines += [f"- `{t['command']}`: {verdict}"]
        if t["exit_code"] != 0:
            lines += ["", "```", t["output"].rstrip(), "```", ""]
    if not tests:
        lines.append("- no test commands were given")
    return "\n".join(lines) + "\n"


def main() -> int:
    delay = float(os.environ.get("SPRINT_DEMO_SLEEP", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    task = load_task()
    task_md = WORKSPACE / "TASK.md"
    task_md_size = task_md.stat().st_size if task_md.is_file() else 0
    recipe = RECIPES / str(task.get("id", ""))
    has_recipe = bool(task.get("id")) and recipe.is_dir()
    text = task_md.read_text(encoding="utf-8") if task_md.is_file() else ""
    if REVIEW_SECTION in text:  # continue the previous attempt: fix what the review points at
        written = apply_review(recipe, reviewed_paths(text)) if has_recipe else []
    else:
        written = copy_recipe(recipe) if has_recipe else write_note(task)
    commands = list(task.get("test_requirements") or []) if has_recipe else []
    tests = run_tests(commands)
    (WORKSPACE / "RESULTS.md").write_text(results_md(task, written, tests), encoding="utf-8")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / "usage.jsonl").open("w", encoding="utf-8") as out:
        for line in usage_lines(task_md_size, written, commands):
            out.write(json.dumps(line) + "\n")
    (ARTIFACTS / "tests.json").write_text(json.dumps(tests, indent=2) + "\n", encoding="utf-8")
    print(
        f"demo team: task {task.get('id')}: {len(written)} files, "
        f"{sum(t['exit_code'] == 0 for t in tests)}/{len(tests)} test commands passed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
