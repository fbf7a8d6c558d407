"""After the run: RESULTS.md, the artifacts and the token-usage transcript of a task team.

A missing RESULTS.md is recorded (`present=False`), never fatal. Usage comes from
/artifacts/usage.jsonl when the team wrote one (our `usage-jsonl` format), else from the container's
stdout in the format its adapter declared; `usage_text=None` means the run reported no usage at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS_MD = "RESULTS.md"
USAGE_JSONL = "usage.jsonl"
SUMMARY_MAX = 2048
_ARTIFACTS_MAX = 200


@dataclass(frozen=True)
class TaskResults:
    summary: str
    present: bool
    artifacts: tuple[str, ...]
    usage_text: str | None
    usage_format: str | None


def collect_results(
    workspace: Path,
    artifacts: Path,
    stdout_path: Path | None = None,
    usage_format: str = "auto",
) -> TaskResults:
    """Read what the team left: RESULTS.md (workspace root, else artifacts), artifact names, usage."""
    results = _first_file(workspace / RESULTS_MD, artifacts / RESULTS_MD)
    text = results.read_text(encoding="utf-8", errors="replace") if results else ""
    usage_text, fmt = _usage(artifacts, stdout_path, usage_format)
    return TaskResults(_summary(text), results is not None, _artifact_names(artifacts), usage_text, fmt)


def _usage(artifacts: Path, stdout_path: Path | None, usage_format: str) -> tuple[str | None, str | None]:
    usage = artifacts / USAGE_JSONL
    if usage.is_file() and not usage.is_symlink():
        return usage.read_text(encoding="utf-8", errors="replace"), "usage-jsonl"
    if stdout_path is not None and stdout_path.is_file():
        text = stdout_path.read_text(encoding="utf-8", errors="replace")
        return (text, usage_format) if text.strip() else (None, None)
    return None, None


def _first_file(*paths: Path) -> Path | None:
    # The team is untrusted: a symlink could point at any file of the operator's host.
    return next((p for p in paths if p.is_file() and not p.is_symlink()), None)


def _summary(text: str) -> str:
    if len(text) <= SUMMARY_MAX:
        return text
    return text[:SUMMARY_MAX].rsplit("\n", 1)[0] + "\n…"


def _artifact_names(artifacts: Path) -> tuple[str, ...]:
    if not artifacts.is_dir():
        return ()
    names = sorted(
        str(p.relative_to(artifacts)) for p in artifacts.rglob("*") if p.is_file() and not p.is_symlink()
    )
    return tuple(names[:_ARTIFACTS_MAX])
