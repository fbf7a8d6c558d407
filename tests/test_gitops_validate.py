"""Malicious ids and paths are rejected with an error naming the field, before any git change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _gitrepo import git, make_origin
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.gitops import Credentials, GitEngine, check_ref_component, check_repo_path

BAD_IDS = [
    ("", "non-empty"),
    ("..", "must not start"),
    ("-x", "must not start"),
    (".hidden", "must not start"),
    ("a..b", "'..'"),
    ("a@{1}", "letters, digits"),
    ("x.lock", ".lock"),
    ("trailing.", "end with"),
    ("a b", "letters, digits"),
    ("a\tb", "letters, digits"),
    ("a\x00b", "letters, digits"),
    ("a\nb", "letters, digits"),
    ("a/b", "letters, digits"),
    ("/abs", "letters, digits"),
    ("a~1", "letters, digits"),
    ("a^2", "letters, digits"),
    ("a:b", "letters, digits"),
    ("a*?[", "letters, digits"),
    ("a\\b", "letters, digits"),
    ("x" * 10_000, "limit is 100"),
]

BAD_PATHS = [
    ("", "non-empty"),
    ("..", "normalized"),
    ("../outside.txt", "normalized"),
    ("src/../../etc/passwd", "normalized"),
    ("/etc/passwd", "absolute"),
    ("C:/Windows/x", "absolute"),
    ("src//app.py", "normalized"),
    ("./src/app.py", "normalized"),
    ("src/", "normalized"),
    (".git/config", "git metadata"),
    ("sub/.GIT/hooks/pre-commit", "git metadata"),
    ("src\\app.py", "'/' as the separator"),
    ("src/a\x00b", "control characters"),
    ("src/a\x1b[31m", "control characters"),
    ("src/a\nb", "control characters"),
    ("x" * 10_000, "limit is 4096"),
    ("d/" + "y" * 300, "longer than 255 bytes"),
]


@pytest.fixture
def engine(tmp_path: Path) -> GitEngine:
    seed = make_origin(tmp_path, {"src/app.py": "x\n", "docs/a.md": "a\n"}, bare=False)
    os.symlink("/etc", seed / "etc-link")
    git(seed, "add", "etc-link")
    git(seed, "commit", "-q", "-m", "symlink")
    engine = GitEngine.open(str(seed), tmp_path / "wt")
    engine.create_sprint("s1")
    return engine


def refs(engine: GitEngine) -> str:
    return git(engine.gitdir, "for-each-ref")


@pytest.mark.parametrize(("bad", "why"), BAD_IDS, ids=[repr(b)[:20] for b, _ in BAD_IDS])
def test_malicious_ids_are_rejected_naming_the_field(engine: GitEngine, bad: str, why: str) -> None:
    before = refs(engine)
    with pytest.raises(InvalidInput, match="sprint_id") as sprint_error:
        engine.create_sprint(bad)
    with pytest.raises(InvalidInput, match="task_id"):
        engine.create_task("s1", bad, 1, ["src/app.py"])
    assert why in str(sprint_error.value)
    assert refs(engine) == before


@pytest.mark.parametrize(("bad", "why"), BAD_PATHS, ids=[repr(b)[:20] for b, _ in BAD_PATHS])
def test_malicious_paths_are_rejected_naming_the_field(engine: GitEngine, bad: str, why: str) -> None:
    before = refs(engine)
    with pytest.raises(InvalidInput, match=r"files_to_modify\[1\]") as error:
        engine.create_task("s1", "t1", 1, ["src/app.py", bad])
    assert why in str(error.value.problems[0])
    assert refs(engine) == before


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("etc-link/passwd", "escapes through the symlink"),
        ("src/app.py/x", "which is a file"),
        ("src", "is a directory"),
    ],
)
def test_paths_through_symlinks_files_or_naming_directories_are_rejected(
    engine: GitEngine, path: str, why: str
) -> None:
    with pytest.raises(InvalidInput, match=why):
        engine.create_task("s1", "t1", 1, [path])
    assert engine.head("task/s1/t1") is None


def test_all_bad_paths_of_a_list_are_reported_at_once(engine: GitEngine) -> None:
    with pytest.raises(InvalidInput) as error:
        engine.create_task("s1", "t1", 1, ["../a", "ok.txt", "/b"])
    assert len(error.value.problems) == 2 and "files_to_modify[2]" in error.value.problems[1]


def test_attempt_must_be_a_positive_integer(engine: GitEngine) -> None:
    for attempt in (0, -1, True, 10_001):
        with pytest.raises(InvalidInput, match="attempt"):
            engine.create_task("s1", "t1", attempt, ["src/app.py"])


def test_branch_names_and_author_identities_are_checked(engine: GitEngine) -> None:
    with pytest.raises(InvalidInput, match="branch"):
        engine.commit_file("sprint/../main", "r.md", b"x", "m")
    with pytest.raises(InvalidInput, match=r"git\.main_branch"):
        GitEngine.open(str(engine.gitdir), engine.gitdir.parent, main_branch="-main")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    with pytest.raises(InvalidInput, match="author_email"):
        engine.commit_task(ws, "s1", "t1", ["src/app.py"], "Team", "x>\nInjected: yes")


def test_good_ids_and_paths_pass_unchanged() -> None:
    assert check_ref_component("Sprint_2024.07-a", "sprint_id") == "Sprint_2024.07-a"
    assert check_repo_path("src/pkg/module name.py", "path") == "src/pkg/module name.py"


def test_credentials_in_the_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="must not contain a password"):
        GitEngine.open("https://user:hunter2@example.invalid/repo.git", tmp_path / "wt")


def test_credentials_stay_out_of_repr_and_the_clone_config(tmp_path: Path) -> None:
    creds = Credentials(username="bot", password="s3cret-token")
    origin = make_origin(tmp_path, {"a.txt": "a\n"})
    engine = GitEngine.open(str(origin), tmp_path / "wt", credentials=creds)
    assert "s3cret" not in repr(creds)
    assert "s3cret" not in (engine.gitdir / "config").read_text()
