"""Input checks for everything that becomes a git ref name or a path inside the repository.

Pure functions, no git: sprint and task ids, branch names and `files_to_modify` entries come from
untrusted specs, so each is checked here before it reaches libgit2, the file system or a command line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidInput

MAX_ID_LENGTH = 100
MAX_PATH_LENGTH = 4096
MAX_PATH_COMPONENT_BYTES = 255

# Stricter than git's check-ref-format on purpose: ids are also Kubernetes names and directory names.
_ID_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BRANCH_CHARS = re.compile(r"[A-Za-z0-9._/-]+")


def check_ref_component(value: object, field: str) -> str:
    """Return `value` if it is safe as one git ref component (a sprint or task id), else raise.

    >>> check_ref_component("sprint-1", "sprint_id")
    'sprint-1'
    """
    problem = _ref_component_problem(value)
    if problem:
        raise InvalidInput(f"{field} {_show(value)} is not a valid id: {problem}")
    return str(value)


def _ref_component_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "it must be a non-empty string"
    if len(value) > MAX_ID_LENGTH:
        return f"it is {len(value)} characters long; the limit is {MAX_ID_LENGTH}"
    if not _ID_CHARS.fullmatch(value):
        return "use only letters, digits, '.', '_' and '-'"
    if value[0] in "-.":
        return "it must not start with '-' or '.'"
    if ".." in value:
        return "it must not contain '..'"
    if value.endswith((".", ".lock")):
        return "it must not end with '.' or '.lock'"
    return None


def check_branch_name(value: object, field: str) -> str:
    """Return a branch name (without `refs/heads/`) made of valid components, else raise."""
    if not isinstance(value, str) or not _BRANCH_CHARS.fullmatch(value) or len(value) > 3 * MAX_ID_LENGTH:
        raise InvalidInput(f"{field} {_show(value)} is not a valid branch name: use letters, digits, '._-/'")
    for part in value.split("/"):
        problem = _ref_component_problem(part)
        if problem:
            raise InvalidInput(f"{field} {_show(value)} is not a valid branch name: {problem}")
    return value


def check_repo_path(path: object, field: str) -> str:
    """Return `path` if it is relative, normalized and stays inside the repository, else raise.

    Symlinks are checked against a tree by the engine (`check_no_symlink_prefix`); this check is pure.
    """
    problem = _path_problem(path)
    if problem:
        raise InvalidInput(f"{field} {_show(path)} is not a valid repository path: {problem}")
    return str(path)


def check_repo_paths(paths: Iterable[object], field: str) -> list[str]:
    """Check every entry of a path list; one error lists every bad entry."""
    good: list[str] = []
    problems: list[str] = []
    for index, path in enumerate(paths):
        problem = _path_problem(path)
        if problem:
            problems.append(f"{field}[{index}] {_show(path)} is not a valid repository path: {problem}")
        else:
            good.append(str(path))
    if problems:
        raise InvalidInput(
            problems[0] if len(problems) == 1 else f"{len(problems)} bad paths in {field}", problems
        )
    return good


def _path_problem(path: object) -> str | None:
    if not isinstance(path, str) or not path:
        return "it must be a non-empty string"
    if len(path) > MAX_PATH_LENGTH:
        return f"it is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}"
    if _CONTROL.search(path):
        return "it contains control characters"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "it must be relative to the repository root, not absolute"
    if "\\" in path:
        return "use '/' as the separator; '\\' is not allowed"
    return _components_problem(path.split("/"))


def _components_problem(parts: list[str]) -> str | None:
    for part in parts:
        if part in ("", ".", ".."):
            return "it must be normalized (no empty, '.' or '..' components)"
        if part.lower() == ".git":
            return "it must not point into git metadata (.git)"
        if len(part.encode()) > MAX_PATH_COMPONENT_BYTES:
            return f"a component is longer than {MAX_PATH_COMPONENT_BYTES} bytes"
    return None


def check_globs(globs: Iterable[object], field: str) -> list[str]:
    """Context globs follow the path rules, except that '*', '?' and '**' are allowed."""
    return check_repo_paths(globs, field)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
