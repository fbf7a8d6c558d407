"""The git engine's answers to an interrupted operator: a commit made again, a push still pending, a
sprint abandoned. Real repositories; the e2e versions are in test_faults_e2e.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from _gitrepo import git, make_origin, write_files
from sprint_orchestrator import faults
from sprint_orchestrator.gitops import GitEngine

TEAM = ("Task Team", "team@example.com")
REFS = "refs/sprint-orchestrator"


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return make_origin(tmp_path, {"README.md": "# demo\n", "src/app.py": "x = 1\n"})


@pytest.fixture
def engine(origin: Path, tmp_path: Path) -> GitEngine:
    return GitEngine.open(str(origin), tmp_path / "wt")


def test_committing_a_task_again_after_a_crash_gives_the_same_commit_and_out_of_scope_files(
    engine: GitEngine,
) -> None:
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    write_files(ws.workspace, {"src/app.py": "x = 2\n", "README.md": "edited\n"})
    first = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    again = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM)
    assert first.commit is not None and first.out_of_scope == ["README.md"]
    assert (again.commit, again.changed_files, again.out_of_scope) == (
        first.commit,
        first.changed_files,
        first.out_of_scope,
    )
    assert not again.no_changes
    assert engine.head("task/s1/t1") == first.commit  # no second commit


def test_a_main_the_remote_lacks_is_pushed_by_publish_main_and_only_then(
    engine: GitEngine, origin: Path
) -> None:
    sprint = engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py"])
    write_files(ws.workspace, {"src/app.py": "x = 2\n"})
    commit = engine.commit_task(ws, "s1", "t1", ["src/app.py"], *TEAM).commit
    merged = engine.merge_task("s1", "t1", str(commit)).merge_commit
    assert engine.merge_sprint_to_main("s1", str(merged), sprint.base_commit).pushed
    assert engine.publish_main() is None  # the remote has it: nothing pending
    # The remote as an operator killed between moving main and pushing it left it.
    git(origin, "update-ref", "refs/heads/main", sprint.base_commit)
    result = engine.publish_main()
    assert result is not None and result.pushed and result.main_commit == merged
    assert git(origin, "rev-parse", "main") == merged
    assert engine.publish_main() is None


def test_abandoning_a_sprint_keeps_unmerged_task_commits_in_salvage_refs(engine: GitEngine) -> None:
    engine.create_sprint("s1")
    for task in ("merged", "waiting"):
        ws = engine.create_task("s1", task, 1, [f"out/{task}.txt"])
        write_files(ws.workspace, {f"out/{task}.txt": f"{task}\n"})
        commit = engine.commit_task(ws, "s1", task, [f"out/{task}.txt"], *TEAM).commit
        if task == "merged":
            engine.merge_task("s1", task, str(commit))
        else:
            waiting = str(commit)
    ws = engine.create_task("s1", "dirty", 1, ["out/dirty.txt"])
    write_files(ws.workspace, {"out/dirty.txt": "not committed\n"})
    sprint_head = engine.head("sprint/s1")
    result = engine.abandon_sprint("s1")
    refs = git(engine.gitdir, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    by_name = dict(line.split() for line in refs)
    assert by_name[f"{REFS}/salvage/s1/waiting/abandoned-{waiting[:12]}"] == waiting
    assert f"{REFS}/salvage/s1/dirty/1" in by_name  # the uncommitted file, salvaged
    assert not any(name.startswith("refs/heads/task/s1/") for name in by_name)
    assert engine.head("sprint/s1") == sprint_head
    assert not any("merged" in ref for ref in result.salvage_refs)
    assert list((engine.gitdir.parent / "tasks").rglob("workspace")) == []


def test_fault_points_are_checked_by_name_and_hit() -> None:
    assert faults.parse("main-moved-before-push, cleanup@3") == {"main-moved-before-push": 1, "cleanup": 3}
    assert faults.parse("") == {}
    with pytest.raises(ValueError, match="unknown fault point 'nope'"):
        faults.parse("nope")
    with pytest.raises(ValueError, match="must be a number"):
        faults.parse("cleanup@0")
    faults.arm("")
    faults.checkpoint("cleanup")  # disarmed: returns
