"""A task's diff for review (gitops/diff.py), on real repositories: files, counts, hunks with line
numbers, binary and oversized files summarized, renames, protected and out-of-scope flags."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from _gitrepo import make_origin, write_files
from sprint_orchestrator.errors import GitError, InvalidInput
from sprint_orchestrator.gitops import GitEngine
from sprint_orchestrator.gitops.diff import open_clone, task_diff

FILES = {
    "README.md": "# app\n",
    "app/core.py": "".join(f"line {i}\n" for i in range(1, 21)),
    "app/old_name.py": "".join(f"value_{i} = {i}\n" for i in range(30)),
    "tests/test_core.py": "def test_ok():\n    assert True\n",
}
TEAM = ("Task Team", "team@example.com")


@pytest.fixture
def engine(tmp_path: Path) -> GitEngine:
    return GitEngine.open(str(make_origin(tmp_path, FILES)), tmp_path / "wt")


def change(engine: GitEngine, files: dict[str, str | bytes], delete: tuple[str, ...] = ()) -> tuple[str, str]:
    """One task attempt writing `files` and deleting `delete`: (base, head)."""
    ws = engine.create_task("s1", "t1", 1, [*files, *delete])
    write_files(ws.workspace, files)
    for path in delete:
        (ws.workspace / path).unlink()
    result = engine.commit_task(ws, "s1", "t1", [*files, *delete], *TEAM)
    assert result.commit is not None
    return ws.base_commit, result.commit


def test_a_modified_file_has_its_counts_hunks_and_line_numbers(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    text = FILES["app/core.py"].replace("line 10\n", "line ten\nline ten and a half\n")
    base, head = change(engine, {"app/core.py": text})
    diff = engine.task_diff(base, head, ["app/core.py"])
    (only,) = diff.files
    assert (only.path, only.status, only.additions, only.deletions) == ("app/core.py", "modified", 2, 1)
    assert not (only.binary or only.oversized or only.protected or only.out_of_scope)
    lines = [ln for hunk in only.hunks for ln in hunk.lines]
    added = [(ln.new, ln.text) for ln in lines if ln.origin == "+"]
    assert added == [(10, "line ten"), (11, "line ten and a half")]
    assert [(ln.old, ln.text) for ln in lines if ln.origin == "-"] == [(10, "line 10")]
    assert diff.text().startswith("diff --git a/app/core.py b/app/core.py\n")
    assert "+line ten and a half\n" in diff.text()
    assert diff.to_json()["additions"] == 2


def test_a_binary_file_is_summarized_with_its_sizes(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    blob = bytes(range(256)) * 8
    base, head = change(engine, {"app/logo.png": blob})
    (only,) = engine.task_diff(base, head, ["app/logo.png"]).files
    assert (only.status, only.binary, only.new_size, only.old_size) == ("added", True, len(blob), 0)
    assert only.hunks == () and only.patch == ""
    assert "Binary files differ" in engine.task_diff(base, head).text()


def test_an_oversized_file_is_summarized_and_the_rest_still_shown(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    big = "x = 1\n" * 200_000  # 1.2 MB of text
    base, head = change(engine, {"data/big.py": big, "README.md": "# app\n\nMore.\n"})
    diff = engine.task_diff(base, head, ["data/big.py", "README.md"])
    by_path = {f.path: f for f in diff.files}
    assert by_path["data/big.py"].oversized and not by_path["data/big.py"].binary
    assert by_path["data/big.py"].hunks == () and by_path["data/big.py"].new_size == len(big)
    assert by_path["README.md"].additions == 2 and by_path["README.md"].hunks
    assert "data/big.py: too large to show" in diff.text()


def test_a_rename_is_one_file_with_both_paths(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    moved = FILES["app/old_name.py"] + "value_30 = 30\n"
    base, head = change(engine, {"app/new_name.py": moved}, delete=("app/old_name.py",))
    (only,) = engine.task_diff(base, head, ["app/new_name.py", "app/old_name.py"]).files
    assert (only.status, only.old_path, only.path) == ("renamed", "app/old_name.py", "app/new_name.py")
    assert (only.additions, only.deletions) == (1, 0) and not only.out_of_scope
    # a rename whose source was not declared leaves the task's scope
    (scoped,) = engine.task_diff(base, head, ["app/new_name.py"]).files
    assert scoped.out_of_scope


def test_protected_and_out_of_scope_paths_are_flagged(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    files: dict[str, str | bytes] = {
        "app/core.py": "changed\n",
        "conftest.py": "import os\n",  # test-runner configuration: always protected
        "tests/test_core.py": "def test_ok():\n    pass\n",  # an existing test, changed
        "tests/test_new.py": "def test_new():\n    assert 1\n",  # a new test is the work
        "deploy/secret.cfg": "x\n",  # protected by the sprint's own globs
    }
    base, head = change(engine, files)
    diff = engine.task_diff(base, head, ["app/core.py", "tests/test_new.py"], ["deploy/*"])
    flags = {f.path: (f.protected, f.out_of_scope) for f in diff.files}
    assert flags == {
        "app/core.py": (False, False),
        "conftest.py": (True, True),
        "deploy/secret.cfg": (True, True),
        "tests/test_core.py": (True, True),
        "tests/test_new.py": (False, False),
    }


def test_without_declared_files_nothing_is_out_of_scope(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    base, head = change(engine, {"anything.txt": "a\n"})
    assert [f.out_of_scope for f in engine.task_diff(base, head, None).files] == [False]


def test_the_text_budget_lists_later_files_without_their_hunks(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    files: dict[str, str | bytes] = {f"f{i}.txt": "a line\n" * 300 for i in range(4)}
    base, head = change(engine, files)
    diff = task_diff(pygit2.Repository(str(engine.gitdir)), base, head, list(files), max_total_chars=5000)
    assert diff.truncated
    assert [f.path for f in diff.files] == sorted(files)
    assert diff.files[0].hunks and not diff.files[-1].hunks
    assert "not shown (the diff is too long)" in diff.text()


def test_a_bad_commit_id_is_refused_naming_the_field(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    base, _ = change(engine, {"x.txt": "x\n"})
    with pytest.raises(InvalidInput, match="head: 'HEAD~1' is not a full commit id"):
        task_diff(pygit2.Repository(str(engine.gitdir)), base, "HEAD~1")


def test_the_clone_is_found_from_the_trees_directory_and_the_url(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, FILES)
    trees = tmp_path / "trees"
    engine = GitEngine.open(str(origin), GitEngine.root_for(trees, str(origin)))
    engine.create_sprint("s1")
    base, head = change(engine, {"README.md": "# app!\n"})
    clone = open_clone(trees, str(origin))
    assert [f.path for f in task_diff(clone, base, head).files] == ["README.md"]
    with pytest.raises(GitError, match="no clone of"):
        open_clone(trees, str(tmp_path / "elsewhere.git"))


def test_a_continued_attempt_starts_from_the_reviewed_commit_and_counts_from_the_base(
    engine: GitEngine,
) -> None:
    engine.create_sprint("s1")
    base, first = change(engine, {"app/core.py": "first attempt\n", "README.md": "# app 1\n"})
    ws = engine.create_task("s1", "t1", 2, ["app/core.py", "README.md"], (), first, base)
    assert (ws.workspace / "app" / "core.py").read_text() == "first attempt\n"  # the team continues
    assert ws.base_commit == base and engine.head("task/s1/t1") == first
    (ws.workspace / "README.md").write_text("# app 2\n")
    result = engine.commit_task(ws, "s1", "t1", ["app/core.py", "README.md"], *TEAM)
    assert result.commit is not None and engine.is_ancestor(first, result.commit)
    assert result.changed_files == ["README.md", "app/core.py"]  # the whole change, from the base
    assert [f.path for f in engine.task_diff(base, result.commit).files] == ["README.md", "app/core.py"]


def test_a_continued_attempt_refuses_a_start_that_is_not_after_its_base(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    base, first = change(engine, {"app/core.py": "first attempt\n"})
    with pytest.raises(InvalidInput, match="does not descend from base"):
        engine.create_task("s1", "t1", 2, ["app/core.py"], (), base, first)
