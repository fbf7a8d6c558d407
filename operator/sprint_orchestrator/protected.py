"""PURE: which paths a task may not change without a human's approval (DESIGN.md §9).

The gate never runs what a task wrote outside its declared files; these rules cover what a task may
change *inside* them (or out of scope, when a human lets it through), because once merged it would
judge every later gate and the integration tests: test-runner configuration, build and CI files,
dependency manifests, interpreter start-up hooks, and existing tests. A new test file is allowed
(adding tests is the work); changing or deleting an existing one is protected.

Patterns are globs: one without '/' matches a file name anywhere ("conftest.py"), one with '/' matches
the whole path, with '*' crossing directories (".github/*").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from fnmatch import fnmatchcase

# Protected whether the task adds or changes them.
ALWAYS: tuple[str, ...] = (
    # test runners and their configuration; a root pytest.py shadows pytest itself
    "conftest.py", "pytest.py", "pytest.ini", "tox.ini", "noxfile.py", "setup.cfg", "setup.py",
    "pyproject.toml", ".coveragerc", "jest.config.*", "vitest.config.*", "karma.conf.*",
    # interpreter start-up hooks
    "sitecustomize.py", "usercustomize.py", "*.pth",
    # build files and dependency manifests
    "Makefile", "GNUmakefile", "makefile", "*.mk", "package.json", "package-lock.json",
    "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", ".npmrc", "requirements*.txt",
    "constraints*.txt", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "go.mod", "go.sum",
    "Cargo.toml", "Cargo.lock", "Containerfile", "Dockerfile", "*.gradle", "pom.xml",
    # CI and repository plumbing
    ".github/*", ".gitlab-ci.yml", ".ci/*", ".circleci/*", "Jenkinsfile", ".gitattributes",
    ".gitmodules", ".sprint/*",
)  # fmt: skip
# Protected when the task changes or deletes an existing one (a new test file is fine).
EXISTING_TESTS: tuple[str, ...] = (
    "tests/*", "test/*", "test_*.py", "*_test.py", "*_test.go", "*.test.js", "*.test.ts", "*.spec.js",
    "*.spec.ts",
)  # fmt: skip


def matches(path: str, pattern: str) -> bool:
    if "/" in pattern:
        return fnmatchcase(path, pattern)
    return fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def _any(path: str, patterns: Iterable[str]) -> bool:
    return any(matches(path, pattern) for pattern in patterns)


def protected_changes(
    changed: Sequence[str], existed: Collection[str], extra: Sequence[str] = ()
) -> list[str]:
    """The changed paths that need a human: `existed` holds those present before the task ran.

    (["src/a.py", "tests/test_a.py", "tests/test_new.py", "conftest.py"], existed={"tests/test_a.py"})
    -> ["tests/test_a.py", "conftest.py"]
    """
    return [
        path
        for path in changed
        if _any(path, (*ALWAYS, *extra)) or (path in existed and _any(path, EXISTING_TESTS))
    ]
