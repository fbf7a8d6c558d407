"""Host paths a Sprint may name stay inside the allowed roots, symlinks and '..' resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprint_orchestrator.hostpaths import EXAMPLES, default_roots, host_path_problems, is_local
from sprint_orchestrator.model import validate_sprint_spec


def spec(recipes: str | None = None, url: str | None = None) -> object:
    data: dict[str, object] = {"tasks": [{"id": "a", "title": "t"}], "team": {"type": "demo"}}
    if recipes:
        data["team"] = {"type": "demo", "recipes": recipes}
    if url:
        data["repository"] = {"url": url}
    return validate_sprint_spec(data)


def test_the_project_examples_are_allowed_by_default() -> None:
    assert host_path_problems(spec(str(EXAMPLES / "demo-team/textstats-1")), default_roots([])) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("recipes", ["/etc", "/root/.ssh", str(EXAMPLES / "../hack")])
def test_recipes_outside_the_roots_are_refused(recipes: str) -> None:
    [problem] = host_path_problems(spec(recipes), default_roots([]))  # type: ignore[arg-type]
    assert problem.startswith("spec.team.recipes: ") and "outside" in problem


def test_a_symlink_inside_a_root_that_points_out_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to("/etc")
    assert host_path_problems(spec(str(root / "escape")), default_roots([str(root)]))  # type: ignore[arg-type]
    (root / "ok").mkdir()
    assert host_path_problems(spec(str(root / "ok")), default_roots([str(root)])) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "local"),
    [("/srv/repo.git", True), ("file:///srv/r", True), ("repo.git", True), ("https://h/r.git", False),
     ("git@h:r.git", False), ("ssh://h/r", False)],
)  # fmt: skip
def test_local_repository_urls(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_a_local_repository_outside_the_roots_is_refused_a_remote_one_is_not(tmp_path: Path) -> None:
    roots = default_roots([str(tmp_path)])
    assert host_path_problems(spec(url="/root/secret.git"), roots)  # type: ignore[arg-type]
    assert host_path_problems(spec(url=str(tmp_path / "r.git")), roots) == []  # type: ignore[arg-type]
    assert host_path_problems(spec(url="https://example.com/r.git"), roots) == []  # type: ignore[arg-type]
