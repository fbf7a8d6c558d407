"""Which branch a Sprint may move as its `mainBranch` (DESIGN.md §9).

The operator pushes the finished sprint to `spec.repository.mainBranch` with its own credentials. A
Sprint author (a namespace editor, not an admin) must not be able to point that push at a release
branch, a deploy branch or another team's branch, so the branch must be one the configuration allows
for that repository:

    git:
      main_branch: main                 # the branch allowed for every repository when nothing else says
      allowed_main_branches:            # optional, per repository URL ("*": any repository)
        "https://git.example.com/team/app.git": [main, trunk]
        "*": [main, master]

A repository listed by its URL gets exactly its list; any other gets the `"*"` list, else `main_branch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .model import SprintSpec


def allowed_branches(url: str, configured: Mapping[str, Sequence[str]], main_branch: str) -> list[str]:
    if url in configured:
        return list(configured[url])
    if "*" in configured:
        return list(configured["*"])
    return [main_branch]


def main_branch_problems(
    spec: SprintSpec, configured: Mapping[str, Sequence[str]], main_branch: str
) -> list[str]:
    """One line naming spec.repository.mainBranch when the configuration does not allow it, else none."""
    if spec.repository is None:
        return []
    url, branch = spec.repository.url, spec.repository.main_branch
    allowed = allowed_branches(url, configured, main_branch)
    if branch in allowed:
        return []
    return [
        f"spec.repository.mainBranch: {branch!r} is not a branch this operator may push to for "
        f"{url!r} (allowed: {', '.join(allowed) or 'none'}); an admin can allow it in "
        "git.allowed_main_branches"
    ]
