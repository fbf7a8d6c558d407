"""Host paths a Sprint may name: only under the roots the operator's configuration allows (DESIGN.md §9).

A Sprint author (a namespace editor) is not a cluster admin: `team.recipes` is mounted into task
containers and a local `repository.url` is cloned and pushed to by the operator, so either could
reach any file on the operator's host. Both must resolve (symlinks followed, `..` collapsed) inside an
allowed root: `orchestrator.allowed_host_paths` of the configuration, plus the project's own examples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .model import SprintSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_URL_SCHEMES = ("http://", "https://", "ssh://", "git://", "file://")


def default_roots(configured: Sequence[str]) -> list[Path]:
    roots = [Path(os.path.realpath(p)) for p in configured]
    return [*roots, EXAMPLES] if EXAMPLES.is_dir() else roots


def is_local(url: str) -> bool:
    """A local path rather than a remote URL (scp-like `host:path` counts as remote)."""
    if url.startswith("file://"):
        return True
    if url.startswith(_URL_SCHEMES):
        return False
    return url.startswith(("/", ".")) or ":" not in url


def _inside(path: str, roots: Sequence[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == root or root in real.parents for root in roots)


def host_path_problems(spec: SprintSpec, roots: Sequence[Path]) -> list[str]:
    """One line per host path of the spec outside the allowed roots, naming the field."""
    allowed = ", ".join(str(r) for r in roots) or "none"
    problems = []
    named = [("spec.team.recipes", spec.team.recipes)]
    if spec.repository is not None and is_local(spec.repository.url):
        named.append(("spec.repository.url", spec.repository.url.removeprefix("file://")))
    for field, path in named:
        if path and not _inside(path, roots):
            problems.append(
                f"{field}: {path!r} is outside the host paths this operator allows ({allowed}); "
                "an admin can add a root to orchestrator.allowed_host_paths"
            )
    return problems
