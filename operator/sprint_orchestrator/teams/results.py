"""After the run: RESULTS.md, the artifacts and the token-usage transcript of a task team.

A missing RESULTS.md is recorded (`present=False`), never fatal. Usage comes from
/artifacts/usage.jsonl when the team wrote one (our `usage-jsonl` format), else from the container's
stdout in the format its adapter declared; `usage_text=None` means the run reported no usage at all.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .safefiles import TooLarge, read_capped, regular_files
from .taskmd import TASK_JSON

RESULTS_MD = "RESULTS.md"
USAGE_JSONL = "usage.jsonl"
SUMMARY_MAX = 2048
USAGE_MAX = 64 << 20  # an agent transcript of a long session is a few MB; more is not usage
_ARTIFACTS_MAX = 200
# What the orchestrator put in (TASK.md, .sprint/task.json) or takes out (RESULTS.md) of a workspace.
ORCHESTRATOR_FILES = ("TASK.md", RESULTS_MD, TASK_JSON)


@dataclass(frozen=True)
class TaskResults:
    summary: str
    present: bool
    artifacts: tuple[str, ...]
    usage_text: str | None
    usage_format: str | None
    problems: tuple[str, ...] = field(default_factory=tuple)


def collect_results(
    workspace: Path,
    artifacts: Path,
    stdout_path: Path | None = None,
    usage_format: str = "auto",
) -> TaskResults:
    """Read what the team left: RESULTS.md (workspace root, else artifacts), artifact names, usage.
    Nothing is followed through a symlink, read from a FIFO or device, or read past its cap."""
    data = read_capped(workspace / RESULTS_MD, 4 * SUMMARY_MAX, truncate=True)
    if data is None:
        data = read_capped(artifacts / RESULTS_MD, 4 * SUMMARY_MAX, truncate=True)
    text = data.decode("utf-8", errors="replace") if data is not None else ""
    problems: list[str] = []
    usage_text, fmt = _usage(artifacts, stdout_path, usage_format, problems)
    names = _artifact_names(artifacts)
    return TaskResults(_summary(text), data is not None, names, usage_text, fmt, tuple(problems))


def _usage(
    artifacts: Path, stdout_path: Path | None, usage_format: str, problems: list[str]
) -> tuple[str | None, str | None]:
    try:
        usage = read_capped(artifacts / USAGE_JSONL, USAGE_MAX)
        if usage is not None:
            return usage.decode("utf-8", errors="replace"), "usage-jsonl"
        out = read_capped(stdout_path, USAGE_MAX) if stdout_path is not None else None
    except TooLarge as exc:
        problems.append(f"token usage not read: {exc}")
        return None, None
    text = out.decode("utf-8", errors="replace") if out is not None else ""
    return (text, usage_format) if text.strip() else (None, None)


def _summary(text: str) -> str:
    if len(text) <= SUMMARY_MAX:
        return text
    return text[:SUMMARY_MAX].rsplit("\n", 1)[0] + "\n…"


def _artifact_names(artifacts: Path) -> tuple[str, ...]:
    if not artifacts.is_dir() or artifacts.is_symlink():
        return ()
    return tuple(sorted(str(p.relative_to(artifacts)) for p in regular_files(artifacts, _ARTIFACTS_MAX)))


def keep_orchestrator_files(workspace: Path, artifacts: Path) -> None:
    """Move TASK.md, RESULTS.md and .sprint/task.json out of the workspace into the artifacts before the
    commit, so they never reach the task branch (parallel tasks would all conflict on them). Only those
    files: anything else under .sprint/ (earlier sprint reports) stays, and a change to it is the task's.
    A symlink is removed, never followed."""
    for name in ORCHESTRATOR_FILES:
        if _through_symlink(workspace, name):
            continue  # e.g. `.sprint -> /root/.ssh`: the link was removed, nothing behind it is touched
        source = workspace / name
        if not (source.is_symlink() or source.exists()):
            continue
        target = artifacts / name
        if source.is_symlink() or not source.is_file() or target.exists():
            if source.is_dir() and not source.is_symlink():
                shutil.rmtree(source, ignore_errors=True)
            else:
                source.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.move(str(source), str(target))  # across filesystems: a copy, then the unlink
        except OSError:  # e.g. a full disk: no half copy may stand for the file (it "exists" above)
            if source.exists():
                target.unlink(missing_ok=True)
            raise
    sprint_dir = workspace / ".sprint"
    if sprint_dir.is_dir() and not sprint_dir.is_symlink() and not any(sprint_dir.iterdir()):
        sprint_dir.rmdir()  # the directory held only our task.json


def _through_symlink(workspace: Path, name: str) -> bool:
    """True (and the link removed) when a parent directory of `name` in the workspace is a symlink."""
    parts = name.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        parent = workspace.joinpath(*parts[:depth])
        if parent.is_symlink():
            parent.unlink()
            return True
    return False
