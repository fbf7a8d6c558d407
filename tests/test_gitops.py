"""The git engine against real repositories: branches, workspaces, commits, merges, main."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from _gitrepo import fsck, git, make_origin, push_to_origin, write_files
from sprint_orchestrator.errors import InvalidInput, MergeRefused
from sprint_orchestrator.gitops import GitEngine, TaskWorkspace, WorkspacePolicy

FILES = {
    "README.md": "# demo\n",
    ".gitignore": "*.log\nbuild/\n",
    "src/app.py": "def greet():\n    return 'hello'\n",
    "src/util.py": "X = 1\n",
    "tests/test_app.py": "def test_ok():\n    assert True\n",
}
TEAM = ("Task Team", "team@example.com")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return make_origin(tmp_path, FILES)


@pytest.fixture
def engine(origin: Path, tmp_path: Path) -> GitEngine:
    return GitEngine.open(str(origin), tmp_path / "wt")


def do_task(engine: GitEngine, task: str, files: dict[str, str | bytes], attempt: int = 1) -> str:
    ws = engine.create_task("s1", task, attempt, list(files))
    write_files(ws.workspace, files)
    result = engine.commit_task(ws, "s1", task, list(files), *TEAM)
    assert result.commit is not None
    return result.commit


def test_open_makes_a_bare_clone_with_gc_auto_off(engine: GitEngine, origin: Path) -> None:
    assert git(engine.gitdir, "config", "gc.auto") == "0"
    assert git(engine.gitdir, "rev-parse", "--is-bare-repository") == "true"
    assert engine.head("main") == git(origin, "rev-parse", "main")


def test_open_refuses_a_working_dir_holding_another_repository(engine: GitEngine, tmp_path: Path) -> None:
    other = make_origin(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, {"a": "b"})
    with pytest.raises(InvalidInput, match="use another working_trees_path"):
        GitEngine.open(str(other), tmp_path / "wt")


def test_sprint_branch_starts_at_main_and_creation_is_idempotent(engine: GitEngine) -> None:
    first = engine.create_sprint("s1")
    again = engine.create_sprint("s1")
    assert first.branch == "sprint/s1"
    assert first.base_commit == engine.head("main") == engine.head("sprint/s1")
    assert (first.worktree / "src" / "app.py").read_text() == FILES["src/app.py"]
    assert again.changes == () and len(first.changes) == 1


def test_task_workspace_holds_the_tree_without_git_metadata(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    assert ws.branch == "task/s1/t1" and not ws.sparse
    assert not (ws.workspace / ".git").exists()
    assert (ws.workspace / "tests" / "test_app.py").read_text() == FILES["tests/test_app.py"]
    assert ws.worktree is not None and (ws.worktree / ".git").is_file()
    assert engine.create_task("s1", "t1", 1, ["src/app.py"]).workspace == ws.workspace


def test_task_branches_from_the_sprint_head_including_merged_work(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    commit = do_task(engine, "t1", {"src/new.py": "NEW = 1\n"})
    engine.merge_task("s1", "t1", commit)
    ws = engine.create_task("s1", "t2", 1, ["src/app.py"])
    assert ws.base_commit == engine.head("sprint/s1")
    assert (ws.workspace / "src" / "new.py").read_text() == "NEW = 1\n"


def test_commit_names_team_as_author_orchestrator_as_committer(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    commit = do_task(engine, "t1", {"src/app.py": "changed\n"})
    show = git(engine.gitdir, "show", "-s", "--format=%an <%ae>|%cn|%B", commit)
    assert show.startswith("Task Team <team@example.com>|Sprint Orchestrator|Task t1 of sprint s1")
    assert engine.head("task/s1/t1") == commit


def test_commit_reports_out_of_scope_changes_and_honours_gitignore(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    write_files(
        ws.workspace,
        {"src/app.py": "x\n", "README.md": "edited\n", "debug.log": "noise", "build/out.bin": b"\0"},
    )
    (ws.workspace / "src" / "util.py").unlink()
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    assert result.changed_files == ["README.md", "src/app.py", "src/util.py"]
    assert result.out_of_scope == ["README.md", "src/util.py"]
    assert engine.file_at(str(result.commit), "debug.log") is None


def test_a_task_without_changes_is_a_result_not_an_error(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    assert result.no_changes and result.commit is None and result.changed_files == []
    assert engine.head("task/s1/t1") == engine.head("sprint/s1")


def test_clean_merge_moves_the_sprint_branch_and_updates_its_worktree(engine: GitEngine) -> None:
    sprint = engine.create_sprint("s1")
    a = do_task(engine, "t1", {"src/a.py": "A\n"})
    b = do_task(engine, "t2", {"src/b.py": "B\n"})
    first = engine.merge_task("s1", "t1", a)
    second = engine.merge_task("s1", "t2", b)
    assert first.merged and second.merged and second.merge_commit == engine.head("sprint/s1")
    assert git(engine.gitdir, "log", "-1", "--format=%P %s", "sprint/s1") == (
        f"{first.merge_commit} {b} Merge task t2 into sprint s1"
    )
    assert (sprint.worktree / "src" / "a.py").read_text() == "A\n"
    assert (sprint.worktree / "src" / "b.py").read_text() == "B\n"
    assert git(sprint.worktree, "status", "--porcelain") == ""


@pytest.mark.parametrize("leftover", ["file-without-index-entry", "untracked-file", "missing-file"])
def test_recovery_repairs_a_sprint_worktree_left_by_a_checkout_killed_midway(
    engine: GitEngine, leftover: str
) -> None:
    """A SIGKILL inside the sprint worktree's checkout can leave a file on disk that the index lacks
    (status `D` + `??`), a stray file, or a file not yet written; recovery makes it match HEAD."""
    sprint = engine.create_sprint("s1")
    engine.merge_task("s1", "t1", do_task(engine, "t1", {"src/a.py": "A\n"}))
    wt = sprint.worktree
    if leftover == "file-without-index-entry":
        git(wt, "rm", "--cached", "-q", "src/a.py")
    elif leftover == "untracked-file":
        (wt / "src" / "stray.py").write_text("half\n")
    else:
        (wt / "src" / "a.py").unlink()
    assert git(wt, "status", "--porcelain") != ""
    report = engine.recover()
    assert str(wt) in report.resynced_worktrees
    assert git(wt, "status", "--porcelain") == ""
    assert (wt / "src" / "a.py").read_text() == "A\n"


def test_textual_conflict_lists_paths_and_leaves_the_sprint_branch(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    a = do_task(engine, "t1", {"src/app.py": "one\n"})
    b = do_task(engine, "t2", {"src/app.py": "two\n"})
    engine.merge_task("s1", "t1", a)
    before = engine.head("sprint/s1")
    result = engine.merge_task("s1", "t2", b)
    assert not result.merged and result.conflicts == ["src/app.py"] and "conflicts" in result.reason
    assert engine.head("sprint/s1") == before


def test_binary_files_round_trip_through_workspace_commit_and_merge(
    engine: GitEngine, tmp_path: Path
) -> None:
    engine.create_sprint("s1")
    blob = bytes(range(256)) * 40
    commit = do_task(engine, "t1", {"assets/logo.png": blob})
    merged = engine.merge_task("s1", "t1", str(commit))
    assert engine.file_at(str(merged.merge_commit), "assets/logo.png") == blob
    engine.export_tree(str(merged.merge_commit), tmp_path / "out")
    assert (tmp_path / "out" / "assets" / "logo.png").read_bytes() == blob


def test_a_rename_merges_with_an_edit_elsewhere(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/util.py", "src/helpers.py"])
    (ws.workspace / "src" / "util.py").rename(ws.workspace / "src" / "helpers.py")
    renamed = engine.commit_task(ws, "s1", "t1", ["src/util.py", "src/helpers.py"], *TEAM)
    assert renamed.changed_files == ["src/helpers.py", "src/util.py"] and renamed.out_of_scope == []
    edit = do_task(engine, "t2", {"src/app.py": "edited\n"})
    assert engine.merge_task("s1", "t2", edit).merged
    result = engine.merge_task("s1", "t1", str(renamed.commit))
    head = str(result.merge_commit)
    assert result.merged and engine.file_at(head, "src/helpers.py") == b"X = 1\n"
    assert engine.file_at(head, "src/util.py") is None and engine.file_at(head, "src/app.py") == b"edited\n"


def test_merge_refuses_when_the_task_branch_moved_after_gating(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    gated = do_task(engine, "t1", {"src/a.py": "A\n"})
    ws = engine.create_task("s1", "t1", 1, ["src/a.py"])
    write_files(ws.workspace, {"src/a.py": "sneaky\n"})
    engine.commit_task(ws, "s1", "t1", ["src/a.py"], *TEAM)
    before = engine.head("sprint/s1")
    with pytest.raises(MergeRefused, match="run the gates on the new commit"):
        engine.merge_task("s1", "t1", gated)
    assert engine.head("sprint/s1") == before


def test_merging_twice_is_idempotent(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    commit = do_task(engine, "t1", {"src/a.py": "A\n"})
    first = engine.merge_task("s1", "t1", commit)
    again = engine.merge_task("s1", "t1", commit)
    assert again.merged and again.merge_commit == first.merge_commit and again.changes == ()


def test_sprint_fast_forwards_main_and_pushes_it(engine: GitEngine, origin: Path) -> None:
    sprint = engine.create_sprint("s1")
    engine.merge_task("s1", "t1", do_task(engine, "t1", {"src/a.py": "A\n"}))
    tested = str(engine.head("sprint/s1"))
    result = engine.merge_sprint_to_main("s1", tested, sprint.base_commit)
    assert result.fast_forward and result.moved and result.pushed and not result.main_moved
    assert git(origin, "rev-parse", "main") == tested == engine.head("main")


def test_main_moved_during_the_sprint_is_reported_then_resolved(
    engine: GitEngine, origin: Path, tmp_path: Path
) -> None:
    sprint = engine.create_sprint("s1")
    engine.merge_task("s1", "t1", do_task(engine, "t1", {"src/a.py": "A\n"}))
    other = push_to_origin(origin, tmp_path, {"docs/x.md": "x\n"}, "someone else")
    tested = str(engine.head("sprint/s1"))
    moved = engine.merge_sprint_to_main("s1", tested, sprint.base_commit)
    assert moved.main_moved and not moved.moved and moved.main_commit == other
    assert git(origin, "rev-parse", "main") == other
    assert engine.merge_main_into_sprint("s1").merged
    retested = str(engine.head("sprint/s1"))
    done = engine.merge_sprint_to_main("s1", retested, other)
    assert done.fast_forward and done.pushed and git(origin, "rev-parse", "main") == retested


def test_merge_to_main_refuses_an_untested_sprint_head(engine: GitEngine) -> None:
    sprint = engine.create_sprint("s1")
    tested = str(engine.head("sprint/s1"))
    engine.merge_task("s1", "t1", do_task(engine, "t1", {"src/a.py": "A\n"}))
    with pytest.raises(MergeRefused, match="test the new head"):
        engine.merge_sprint_to_main("s1", tested, sprint.base_commit)


def test_a_local_checked_out_target_is_updated_only_in_the_clone(tmp_path: Path) -> None:
    target = make_origin(tmp_path, FILES, bare=False)
    engine = GitEngine.open(str(target), tmp_path / "wt")
    sprint = engine.create_sprint("s1")
    engine.merge_task("s1", "t1", do_task(engine, "t1", {"src/a.py": "A\n"}))
    result = engine.merge_sprint_to_main("s1", str(engine.head("sprint/s1")), sprint.base_commit)
    assert result.moved and not result.pushed and "pull main" in result.reason
    assert git(target, "rev-parse", "main") == sprint.base_commit
    assert git(target, "status", "--porcelain") == ""


def test_large_repositories_get_a_sparse_workspace(origin: Path, tmp_path: Path) -> None:
    engine = GitEngine.open(str(origin), tmp_path / "wt", policy=WorkspacePolicy(full_max_files=3))
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py", "src/new/mod.py"], context_globs=["*.md"])
    files = sorted(str(p.relative_to(ws.workspace)) for p in ws.workspace.rglob("*") if p.is_file())
    assert ws.sparse and ws.worktree is None
    assert files == [".gitignore", "README.md", "src/app.py", "src/util.py"]
    write_files(ws.workspace, {"src/new/mod.py": "M\n"})
    (ws.workspace / "src" / "util.py").unlink()
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py", "src/new/mod.py"], *TEAM)
    commit = str(result.commit)
    assert result.changed_files == ["src/new/mod.py", "src/util.py"]
    assert engine.file_at(commit, "tests/test_app.py") == FILES["tests/test_app.py"].encode()


def test_export_with_overlay_takes_trusted_tests_from_the_sprint(engine: GitEngine, tmp_path: Path) -> None:
    engine.create_sprint("s1")
    commit = do_task(engine, "t1", {"tests/test_app.py": "def test_ok(): pass\n", "tests/fake.py": "x"})
    sprint = str(engine.head("sprint/s1"))
    engine.export_tree(commit, tmp_path / "gate", overlay={"tests": sprint})
    assert (tmp_path / "gate" / "tests" / "test_app.py").read_text() == FILES["tests/test_app.py"]
    assert not (tmp_path / "gate" / "tests" / "fake.py").exists()
    assert not (tmp_path / "gate" / ".git").exists()
    assert engine.changed_paths(sprint, commit) == ["tests/fake.py", "tests/test_app.py"]


def test_rebuild_without_skips_excluded_tasks_deterministically(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    base = str(engine.head("sprint/s1"))
    commits = [do_task(engine, f"t{i}", {f"src/f{i}.py": f"{i}\n"}) for i in range(3)]
    rebuilt = engine.rebuild_without(base, commits, {commits[1]})
    assert rebuilt is not None and rebuilt == engine.rebuild_without(base, commits, {commits[1]})
    assert engine.file_at(rebuilt, "src/f0.py") == b"0\n" and engine.file_at(rebuilt, "src/f2.py") == b"2\n"
    assert engine.file_at(rebuilt, "src/f1.py") is None
    assert rebuilt in git(
        engine.gitdir, "for-each-ref", "--format=%(objectname)", "refs/sprint-orchestrator/"
    )


def test_a_rebuild_replaces_the_sprint_branch_by_compare_and_swap(engine: GitEngine) -> None:
    sprint = engine.create_sprint("s1")
    commits = [do_task(engine, f"t{i}", {f"src/f{i}.py": f"{i}\n"}) for i in range(2)]
    for i, commit in enumerate(commits):
        engine.merge_task("s1", f"t{i}", commit)
    head = str(engine.head("sprint/s1"))
    rebuilt = str(engine.rebuild_without(sprint.base_commit, commits, {commits[0]}))
    with pytest.raises(MergeRefused, match="re-read it"):
        engine.move_sprint_branch("s1", rebuilt, sprint.base_commit, "eject t0")
    change = engine.move_sprint_branch("s1", rebuilt, head, "eject t0")
    assert (change.old, change.new, change.reason) == (head, rebuilt, "eject t0")
    assert not (sprint.worktree / "src" / "f0.py").exists() and (sprint.worktree / "src" / "f1.py").exists()


def test_the_merge_order_is_read_from_the_sprint_branchs_history(
    engine: GitEngine, origin: Path, tmp_path: Path
) -> None:
    sprint = engine.create_sprint("s1")
    commits = [do_task(engine, f"t{i}", {f"src/f{i}.py": f"{i}\n"}) for i in range(4)]
    for i in (2, 0):
        engine.merge_task("s1", f"t{i}", commits[i])
    push_to_origin(origin, tmp_path, {"docs/x.md": "x\n"}, "someone else")
    assert engine.merge_main_into_sprint("s1").merged  # main's commits are no task's: not in the order
    engine.merge_task("s1", "t1", commits[1])
    engine.merge_task("s1", "t1", commits[1])  # merged twice: listed once
    # t3 was never merged: left out; the order is the merges', not the one asked in
    assert engine.merge_order("s1", commits) == [commits[2], commits[0], commits[1]]
    assert engine.merge_order("s1", [commits[1], commits[2]]) == [commits[2], commits[1]]
    assert engine.merge_order("s1", []) == []
    head = str(engine.head("sprint/s1"))
    merged = [commits[2], commits[0], commits[1]]
    rebuilt = str(engine.rebuild_without(sprint.base_commit, merged, {commits[0]}))
    engine.move_sprint_branch("s1", rebuilt, head, "eject t0")  # a bisect rebuild's merges count too
    assert engine.merge_order("s1", commits) == [commits[2], commits[1]]
    with pytest.raises(InvalidInput):
        engine.merge_order("../s1", commits)


def test_rebuild_without_returns_none_on_conflict(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    base = str(engine.head("sprint/s1"))
    commits = [do_task(engine, f"t{i}", {"src/app.py": f"{i}\n"}) for i in range(2)]
    assert engine.rebuild_without(base, commits, set()) is None


def test_cleanup_salvages_uncommitted_work_first(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    write_files(ws.workspace, {"src/app.py": "unsaved\n"})
    result = engine.cleanup_task("s1", "t1", 1)
    assert result.salvage_refs == ["refs/sprint-orchestrator/salvage/s1/t1/1"]
    assert git(engine.gitdir, "show", "refs/sprint-orchestrator/salvage/s1/t1/1:src/app.py") == "unsaved"
    assert not ws.workspace.exists() and ws.worktree is not None and not ws.worktree.exists()
    assert engine.cleanup_task("s1", "t1", 1).removed == []
    assert "task-2-s1-t1-1" not in git(engine.gitdir, "worktree", "list")


def test_deleting_an_unmerged_task_branch_keeps_its_commits(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    commit = do_task(engine, "t1", {"src/a.py": "A\n"})
    result = engine.cleanup_task("s1", "t1", 1, delete_branch=True)
    assert engine.head("task/s1/t1") is None
    assert git(engine.gitdir, "rev-parse", "refs/sprint-orchestrator/salvage/s1/t1/1-branch") == commit
    assert [c.reason for c in result.changes][-1] == "delete task branch"


def test_cleanup_sprint_removes_every_worktree_and_keeps_the_branch(engine: GitEngine) -> None:
    sprint = engine.create_sprint("s1")
    engine.merge_task("s1", "t1", do_task(engine, "t1", {"src/a.py": "A\n"}))
    engine.create_task("s1", "t2", 1, ["src/b.py"])
    engine.cleanup_sprint("s1")
    assert not sprint.worktree.exists()
    assert git(engine.gitdir, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert engine.head("sprint/s1") is not None
    fsck(engine.gitdir)


def test_a_new_attempt_restarts_from_the_sprint_head_keeping_old_commits(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    old = do_task(engine, "t1", {"src/a.py": "first try\n"})
    ws = engine.create_task("s1", "t1", 2, ["src/a.py"])
    assert ws.base_commit == engine.head("task/s1/t1") == engine.head("sprint/s1")
    assert old in git(engine.gitdir, "for-each-ref", "--format=%(objectname)", "refs/sprint-orchestrator/")


def test_a_new_attempt_removes_the_earlier_attempt_s_directory_after_salvaging_its_work(
    engine: GitEngine, tmp_path: Path
) -> None:
    engine.create_sprint("s1")
    first = engine.create_task("s1", "t1", 1, ["src/a.py"])
    write_files(first.workspace, {"src/a.py": "unfinished\n"})  # never committed: its container died
    engine.create_task("s1", "t1", 2, ["src/a.py"])
    assert not (tmp_path / "wt" / "tasks" / "s1" / "t1" / "1").exists()
    salvaged = git(engine.gitdir, "rev-parse", "refs/sprint-orchestrator/salvage/s1/t1/1")
    assert git(engine.gitdir, "show", f"{salvaged}:src/a.py") == "unfinished"
    engine.cleanup_task("s1", "t1", 2)
    assert not (tmp_path / "wt" / "tasks" / "s1").exists()  # nothing of the task outlives its cleanup


def test_commit_file_commits_without_a_checkout(engine: GitEngine) -> None:
    sprint = engine.create_sprint("s1")
    commit = engine.commit_file("sprint/s1", "reports/s1.md", b"# report\n", "Sprint s1 report")
    assert engine.head("sprint/s1") == commit
    assert (sprint.worktree / "reports" / "s1.md").read_bytes() == b"# report\n"
    assert engine.commit_file("sprint/s1", "reports/s1.md", b"# report\n", "again") == commit


def test_workspace_symlinks_are_committed_as_links_never_followed(engine: GitEngine, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/link", "src/host"])
    os.symlink("util.py", ws.workspace / "src" / "link")
    os.symlink(secret, ws.workspace / "src" / "host")
    result = engine.commit_task(ws, "s1", "t1", ["src/link", "src/host"], *TEAM)
    assert engine.file_at(str(result.commit), "src/link") == b"util.py"
    mode = git(engine.gitdir, "ls-tree", str(result.commit), "src/link").split()[0]
    assert mode == "120000"
    assert engine.file_at(str(result.commit), "src/host") is None  # refused, and never read
    assert [r.split(":")[0] for r in result.refused] == ["src/host"]


def test_a_git_directory_made_by_the_team_is_not_committed(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    write_files(ws.workspace, {".git/config": "[core]\n", "src/app.py": "x\n"})
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    assert result.changed_files == ["src/app.py"]


def test_every_ref_change_is_returned_and_logged(engine: GitEngine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sprint_orchestrator.git")
    engine.create_sprint("s1")
    commit = do_task(engine, "t1", {"src/a.py": "A\n"})
    result = engine.merge_task("s1", "t1", commit)
    (change,) = result.changes
    assert (change.ref, change.new, change.sprint, change.task) == (
        "refs/heads/sprint/s1",
        result.merge_commit,
        "s1",
        "t1",
    )
    logged = [r for r in caplog.records if getattr(r, "git_ref", None) == "refs/heads/sprint/s1"]
    assert logged[-1].new == result.merge_commit and logged[-1].reason == "merge task t1"  # type: ignore[attr-defined]


def test_workspace_of_another_task_is_refused(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    with pytest.raises(InvalidInput, match="belongs to s1/t1"):
        engine.commit_task(ws, "s1", "t2", ["src/app.py"], *TEAM)
    elsewhere = TaskWorkspace(**{**ws.__dict__, "workspace": ws.workspace.parent})
    with pytest.raises(InvalidInput, match="is not the prepared workspace"):
        engine.commit_task(elsewhere, "s1", "t1", ["src/app.py"], *TEAM)


def test_symlinks_out_of_the_repository_and_huge_files_are_refused_at_commit(
    engine: GitEngine, tmp_path: Path
) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    (ws.workspace / "src/passwd").symlink_to("/etc/passwd")
    (ws.workspace / "src/up").symlink_to("../../outside")
    (ws.workspace / "src/ok").symlink_to("util.py")
    with (ws.workspace / "src/app.py").open("wb") as out:
        out.truncate(65 << 20)  # over the limit: the tracked file keeps its old content
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    assert sorted(r.split(":")[0] for r in result.refused) == ["src/app.py", "src/passwd", "src/up"]
    assert result.changed_files == ["src/ok"]
    assert git(engine.gitdir, "show", f"{result.commit}:src/app.py") == FILES["src/app.py"].strip()
    assert "absolute path '/etc/passwd'" in next(r for r in result.refused if r.startswith("src/passwd"))


def test_a_sprint_id_belongs_to_the_sprint_that_created_it(engine: GitEngine) -> None:
    first = engine.create_sprint("s1", "team-a/sprint")
    assert engine.create_sprint("s1", "team-a/sprint").branch == first.branch  # idempotent for its owner
    with pytest.raises(InvalidInput, match="already used in this repository by the Sprint team-a/sprint"):
        engine.create_sprint("s1", "team-b/sprint")
