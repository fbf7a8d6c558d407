"""The gate's trusted tree and the protected-path rules, on real git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from _gitrepo import make_origin, write_files
from sprint_orchestrator.gitops import GitEngine
from sprint_orchestrator.handlers.gating import gate_overlay, protected_changes, verdict
from sprint_orchestrator.protected import matches

FILES = {
    "src/app.py": "def greet():\n    return 'hello'\n",
    "tests/test_app.py": "from src.app import greet\n\ndef test_greet():\n    assert greet() == 'hello'\n",
    "pyproject.toml": "[project]\nname = 'x'\n",
}
TEAM = ("Task Team", "team@example.com")


@pytest.fixture
def engine(tmp_path: Path) -> GitEngine:
    engine = GitEngine.open(str(make_origin(tmp_path, FILES)), tmp_path / "wt")
    engine.create_sprint("s1")
    return engine


def task_commit(engine: GitEngine, declared: list[str], files: dict[str, str]) -> tuple[str, str, list[str]]:
    ws = engine.create_task("s1", "t1", 1, declared)
    write_files(ws.workspace, files)
    result = engine.commit_task(ws, "s1", "t1", declared, *TEAM)
    assert result.commit
    return ws.base_commit, result.commit, result.changed_files


def exported(engine: GitEngine, tmp: Path, commit: str, overlay: dict[str, str]) -> dict[str, str]:
    out = tmp / "gate"
    engine.export_tree(commit, out, overlay)
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def test_the_gate_sees_only_the_declared_files_of_a_task(engine: GitEngine, tmp_path: Path) -> None:
    base, commit, _ = task_commit(
        engine,
        ["src/app.py"],
        {
            "src/app.py": "def greet():\n    return 'hi'\n",
            "pytest.py": "raise SystemExit(0)\n",  # would shadow pytest itself
            "conftest.py": "collect_ignore_glob = ['*']\n",
            "tests/test_app.py": "def test_greet():\n    pass\n",
            "sitecustomize.py": "import os\n",
        },
    )
    overlay = gate_overlay(engine, base, commit, ["src/app.py"])
    assert overlay == {"src/app.py": commit}
    tree = exported(engine, tmp_path, engine.head("sprint/s1"), overlay)
    assert tree["src/app.py"] == "def greet():\n    return 'hi'\n"
    assert tree["tests/test_app.py"] == FILES["tests/test_app.py"]
    assert not {"pytest.py", "conftest.py", "sitecustomize.py"} & set(tree)


def test_a_declared_file_the_task_deleted_is_deleted_in_the_gate(engine: GitEngine, tmp_path: Path) -> None:
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    (ws.workspace / "src/app.py").unlink()
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    assert result.commit
    overlay = gate_overlay(engine, ws.base_commit, result.commit, ["src/app.py"])
    assert "src/app.py" not in exported(engine, tmp_path, engine.head("sprint/s1"), overlay)


def test_changing_existing_tests_and_runner_config_is_protected_adding_tests_is_not(
    engine: GitEngine,
) -> None:
    declared = ["tests/test_app.py", "tests/test_new.py", "pyproject.toml", "src/app.py"]
    base, _, changed = task_commit(
        engine,
        declared,
        {
            "tests/test_app.py": "def test_greet():\n    pass\n",
            "tests/test_new.py": "def test_new():\n    assert True\n",
            "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-k nothing'\n",
            "src/app.py": "X = 1\n",
            "sub/conftest.py": "x = 1\n",
        },
    )
    assert protected_changes(engine, base, changed, []) == [
        "pyproject.toml",
        "sub/conftest.py",
        "tests/test_app.py",
    ]
    assert protected_changes(engine, base, changed, ["src/*"]) == [
        "pyproject.toml", "src/app.py", "sub/conftest.py", "tests/test_app.py",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("a/b/conftest.py", "conftest.py", True),
        ("conftest.py.bak", "conftest.py", False),
        (".github/workflows/ci.yml", ".github/*", True),
        ("docs/.github/x", ".github/*", False),
        ("lib/site.pth", "*.pth", True),
        ("requirements-dev.txt", "requirements*.txt", True),
    ],
)
def test_protected_patterns(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, pattern) is expected


PASS = [{"command": "pytest", "passed": True}]
FAIL = [{"command": "pytest -q", "passed": False}]


@pytest.mark.parametrize(
    ("results", "out_of_scope", "policy", "protected", "reason"),
    [
        (PASS, [], "review", [], ""),
        (FAIL, ["x"], "review", ["conftest.py"], "GateFailed"),
        (PASS, [], "warn", ["conftest.py"], "ProtectedPaths"),  # whatever the policy
        (PASS, ["docs/x.md"], "review", [], "OutOfScope"),
        (PASS, ["docs/x.md"], "warn", [], ""),
    ],
)
def test_verdict(
    results: list[dict[str, object]], out_of_scope: list[str], policy: str, protected: list[str], reason: str
) -> None:
    assert verdict(results, out_of_scope, policy, protected)[0] == reason
