"""A Sprint moves only a main branch the operator's configuration allows for its repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprint_orchestrator.branchpolicy import allowed_branches, main_branch_problems
from sprint_orchestrator.config import load_config
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.model import SprintSpec, validate_sprint_spec

APP = "https://git.example.com/team/app.git"


def spec(branch: str, url: str = APP) -> SprintSpec:
    return validate_sprint_spec(
        {"tasks": [{"id": "a", "title": "t"}], "repository": {"url": url, "mainBranch": branch}}
    )


def test_without_configuration_only_the_configured_main_branch_is_allowed() -> None:
    assert main_branch_problems(spec("main"), {}, "main") == []
    [problem] = main_branch_problems(spec("release/1.0"), {}, "main")
    assert problem.startswith("spec.repository.mainBranch: 'release/1.0' is not a branch")
    assert "(allowed: main)" in problem and "git.allowed_main_branches" in problem


def test_a_repository_listed_by_url_gets_exactly_its_list_others_the_wildcard() -> None:
    configured = {APP: ["trunk"], "*": ["main", "master"]}
    assert allowed_branches(APP, configured, "main") == ["trunk"]
    assert main_branch_problems(spec("main"), configured, "main")  # not for APP: it has its own list
    assert main_branch_problems(spec("trunk"), configured, "main") == []
    assert main_branch_problems(spec("master", "https://h/other.git"), configured, "main") == []
    assert main_branch_problems(spec("prod", "https://h/other.git"), configured, "main")


def test_a_sprint_without_a_repository_uses_the_configured_one_and_is_not_checked() -> None:
    assert main_branch_problems(validate_sprint_spec({"tasks": [{"id": "a", "title": "t"}]}), {}, "x") == []


def test_the_configuration_names_the_field_of_a_bad_allowlist(tmp_path: Path) -> None:
    config = load_config(None, {})
    assert config.git.allowed_main_branches == {}
    path = tmp_path / "c.yaml"
    path.write_text("git: {allowed_main_branches: {'*': ['']}}\n")
    with pytest.raises(InvalidInput) as info:
        load_config(path, {})
    assert "git.allowed_main_branches" in str(info.value) + str(getattr(info.value, "problems", ""))
