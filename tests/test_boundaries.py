"""One adapter per external system (STYLE.md): only these modules import these libraries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "operator" / "sprint_orchestrator"
ALLOWED = {
    "pygit2": ("gitops/",),
    "podman": ("runtime/podman",),  # podman.py and its parts (podmanbuild, -connect, -oneshot, ...)
    "kubernetes": ("kube.py", "kubebase.py", "kubepods.py"),  # kube.Kube and its parts
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_only_its_adapter_imports_each_external_system(library: str) -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if library in imported_roots(path)
    )
    assert importers, f"nothing imports {library}: is the table above out of date?"
    outside = [p for p in importers if not p.startswith(ALLOWED[library])]
    assert outside == [], f"{library} imported outside its adapter: {outside}"


def relative_imports(path: Path) -> set[str]:
    """The sibling modules a module imports (`from . import x`, `from .x import y`)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


def test_a_tasks_token_accounting_has_one_home_that_the_proxy_attempt_does_not_call_back() -> None:
    """tokens.py decides budgets and the status block; metering.py only runs the attempt's proxy access
    and hands its count over. Neither imports the other, so a value cannot bounce between them."""
    handlers = PACKAGE / "handlers"
    assert "tokens" not in relative_imports(handlers / "metering.py")
    assert "metering" not in relative_imports(handlers / "tokens.py")
    assert {"status_tokens", "task_budget", "budget_verdict"} <= {
        node.name
        for node in ast.parse((handlers / "tokens.py").read_text()).body
        if isinstance(node, ast.FunctionDef)
    }


CLI = "commands"


def test_the_web_app_does_not_import_the_clis_helpers() -> None:
    """The dashboard and sprintctl share code through neutral modules (nonces.py, review.py), never
    through `commands/`."""
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in (PACKAGE / "web").rglob("*.py")
        if any(
            isinstance(node, ast.ImportFrom)
            and node.level >= 1
            and (node.module or "").startswith("commands")
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
        )
    )
    assert importers == []
