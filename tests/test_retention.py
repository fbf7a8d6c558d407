"""Retention: the pure decision (what to prune, when git maintenance may run), the symlink-safe file
removal, and the git engine's leftovers and maintenance on real repositories."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from _gitrepo import fsck, git, make_origin, write_files
from sprint_orchestrator.config import OrchestratorConfig, config_from_mapping
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.gitops import GitEngine
from sprint_orchestrator.gitops.leftovers import object_counts
from sprint_orchestrator.prunefs import inside, remove
from sprint_orchestrator.retention import (
    Item,
    Policy,
    gc_plan,
    kept_sprints,
    may_maintain,
    policy_of,
    to_prune,
)

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


def items_of(*sprints: tuple[str, float | None, bool]) -> list[Item]:
    """Two items (artifacts, a log) per (sprint, finished days ago, running)."""
    out = []
    for key, ago, running in sprints:
        when = None if ago is None else day(ago)
        out += [Item(kind, key, f"/{kind}/{key}", when, running) for kind in ("artifacts", "logs")]
    return out


def pruned_sprints(items: list[Item], policy: Policy) -> set[str]:
    return {item.sprint or item.where for item in to_prune(items, policy, NOW)}


def test_the_newest_finished_sprints_are_kept_and_the_older_ones_pruned() -> None:
    items = items_of(("ns/a", 9, False), ("ns/b", 8, False), ("ns/c", 7, False), ("ns/d", 1, False))
    assert pruned_sprints(items, Policy(keep_sprints=2, max_age_s=30 * 86400)) == {"ns/a", "ns/b"}


def test_every_item_of_a_pruned_sprint_goes() -> None:
    items = items_of(("ns/a", 3, False), ("ns/b", 1, False))
    dropped = to_prune(items, Policy(keep_sprints=1), NOW)
    assert sorted(i.kind for i in dropped) == ["artifacts", "logs"]
    assert {i.sprint for i in dropped} == {"ns/a"}


def test_a_finished_sprint_past_the_age_goes_even_within_the_count() -> None:
    items = items_of(("ns/old", 40, False), ("ns/new", 2, False))
    assert pruned_sprints(items, Policy(keep_sprints=20, max_age_s=30 * 86400)) == {"ns/old"}


def test_a_running_sprint_is_never_pruned_whatever_its_age_or_rank() -> None:
    items = items_of(
        ("ns/run", 400, True), ("ns/pending", None, False), *[(f"ns/f{i}", i, False) for i in range(3)]
    )
    dropped = pruned_sprints(items, Policy(keep_sprints=1, max_age_s=86400))
    assert "ns/run" not in dropped and "ns/pending" not in dropped
    assert dropped == {"ns/f1", "ns/f2"}


def test_an_item_of_a_running_sprint_is_kept_even_when_another_item_calls_it_finished() -> None:
    items = [Item("logs", "ns/a", "/l", day(90), False), Item("artifacts", "ns/a", "/a", None, True)]
    assert to_prune(items, Policy(keep_sprints=1, max_age_s=86400), NOW) == []


def test_orphans_go_by_their_own_age_and_take_no_place_in_the_count() -> None:
    items = [
        Item("salvage-ref", "", "refs/old", day(31)),
        Item("logs", "", "/logs/young", day(1)),
        *items_of(("ns/a", 2, False), ("ns/b", 1, False)),
    ]
    assert pruned_sprints(items, Policy(keep_sprints=2, max_age_s=30 * 86400)) == {"refs/old"}


def test_a_disabled_policy_prunes_nothing() -> None:
    items = items_of(("ns/a", 400, False))
    assert to_prune(items, Policy(keep_sprints=1, max_age_s=1, enabled=False), NOW) == []


def test_ties_in_finish_time_are_broken_by_name_so_the_decision_is_stable() -> None:
    items = items_of(("ns/a", 1, False), ("ns/b", 1, False))
    assert kept_sprints(items, Policy(keep_sprints=1), NOW) == {"ns/b"}


@pytest.mark.parametrize(
    ("phases", "allowed"),
    [
        ([], True),
        (["Completed", "Failed", "Partial", "RolledBack"], True),
        (["Completed", "Pending"], True),
        (["Completed", "Running"], False),
        (["Initializing"], False),
        (["Failed", "Integrating"], False),
    ],
)
def test_git_maintenance_runs_only_while_no_sprint_of_the_repository_is_active(
    phases: list[str], allowed: bool
) -> None:
    assert may_maintain(phases) is allowed


def test_the_configuration_section_has_working_defaults_and_names_a_bad_field() -> None:
    policy = policy_of(OrchestratorConfig().retention)
    assert policy == Policy(keep_sprints=20, max_age_s=30 * 86400, enabled=True)
    config = config_from_mapping({"retention": {"keep_sprints": 3, "max_age_days": 2}}, {})
    assert policy_of(config.retention) == Policy(keep_sprints=3, max_age_s=2 * 86400)
    with pytest.raises(InvalidInput) as info:
        config_from_mapping({"retention": {"keep_sprints": 0}}, {})
    assert any("retention.keep_sprints" in line for line in info.value.problems)
    with pytest.raises(InvalidInput) as info:
        config_from_mapping({"retention": {"keep": 3}}, {})
    assert any("retention.keep" in line for line in info.value.problems)


# --- files: inside the root, no link followed -------------------------------------------------------


def test_a_tree_with_symlinks_out_is_removed_without_touching_their_targets(tmp_path: Path) -> None:
    root, outside = tmp_path / "state", tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    victim = root / "artifacts" / "ns" / "s1"
    victim.mkdir(parents=True)
    (victim / "out.txt").write_text("x" * 10_000)
    (victim / "link-dir").symlink_to(outside)
    (victim / "link-file").symlink_to(outside / "keep.txt")
    freed = remove(root, victim)
    assert not victim.exists() and freed >= 10_000
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_path_through_a_symlinked_parent_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "state", tmp_path / "precious"
    (outside / "s1").mkdir(parents=True)
    (root / "artifacts").mkdir(parents=True)
    (root / "artifacts" / "ns").symlink_to(outside)
    assert not inside(root, root / "artifacts" / "ns" / "s1")
    with pytest.raises(InvalidInput, match="not inside"):
        remove(root, root / "artifacts" / "ns" / "s1")
    assert (outside / "s1").is_dir()


def test_a_symlink_itself_is_unlinked_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "state"
    (root / "logs").mkdir(parents=True)
    target = tmp_path / "target.log"
    target.write_text("keep")
    (root / "logs" / "so-x-1-abc.log").symlink_to(target)
    remove(root, root / "logs" / "so-x-1-abc.log")
    assert not (root / "logs" / "so-x-1-abc.log").is_symlink() and target.read_text() == "keep"


def test_dot_dot_and_relative_paths_are_refused(tmp_path: Path) -> None:
    assert not inside(tmp_path, tmp_path / "a" / ".." / ".." / "etc")
    assert not inside(tmp_path, Path("relative"))


# --- the git engine's leftovers and maintenance -------------------------------------------------------


def finished_sprint(engine: GitEngine, sprint: str) -> None:
    """A sprint with one merged task and one unmerged task whose uncommitted work was salvaged."""
    engine.create_sprint(sprint)
    for task, files in (("merged", {f"{sprint}.txt": "x\n"}), ("unmerged", {f"{sprint}-u.txt": "u\n"})):
        ws = engine.create_task(sprint, task, 1, list(files))
        write_files(ws.workspace, files)
        commit = engine.commit_task(ws, sprint, task, list(files), "Team", "team@example.com").commit
        assert commit is not None
        if task == "merged":
            assert engine.merge_task(sprint, task, commit).merged
    ws = engine.create_task(sprint, "unmerged", 2, [f"{sprint}-u.txt"])
    write_files(ws.workspace, {f"{sprint}-u.txt": "not committed\n"})
    for task, attempt in (("merged", 1), ("unmerged", 1), ("unmerged", 2)):
        engine.cleanup_task(sprint, task, attempt)


def test_the_engine_lists_and_drops_what_a_finished_sprint_left(tmp_path: Path) -> None:
    engine = GitEngine.open(str(make_origin(tmp_path, {"README.md": "x\n"})), tmp_path / "wt")
    finished_sprint(engine, "s1")
    finished_sprint(engine, "s2")
    found = engine.sprint_leftovers()
    of_s1 = sorted((item.kind, item.where) for item in found if item.sprint == "s1")
    assert ("worktree", str(tmp_path / "wt" / "sprints" / "s1")) in of_s1
    assert ("task-branch", "refs/heads/task/s1/merged") in of_s1
    assert ("task-branch", "refs/heads/task/s1/unmerged") in of_s1
    assert any(
        kind == "salvage-ref" and ref.startswith("refs/sprint-orchestrator/salvage/s1/")
        for kind, ref in of_s1
    )
    for item in found:
        if item.sprint == "s1":
            engine.drop_leftover(item)
    left = {item.sprint for item in engine.sprint_leftovers()}
    assert left == {"s2"}
    assert not (tmp_path / "wt" / "sprints" / "s1").exists()
    refs = git(engine.gitdir, "for-each-ref", "--format=%(refname)").split()
    assert "refs/heads/sprint/s1" in refs  # the sprint branch, the sprint's record, stays
    assert not [r for r in refs if "/s1/" in r]
    fsck(engine.gitdir)


def test_maintenance_packs_the_clone_prunes_dropped_work_and_keeps_every_branch(tmp_path: Path) -> None:
    engine = GitEngine.open(str(make_origin(tmp_path, {"README.md": "x\n"})), tmp_path / "wt")
    for i in range(4):
        finished_sprint(engine, f"s{i}")
    salvaged = [i for i in engine.sprint_leftovers() if i.kind == "salvage-ref" and i.sprint == "s0"]
    doomed = git(engine.gitdir, "rev-parse", salvaged[0].where)
    for item in engine.sprint_leftovers():
        if item.sprint == "s0":
            engine.drop_leftover(item)
    loose = engine.gitdir / "objects" / doomed[:2] / doomed[2:]
    os.utime(loose, (1_000_000_000, 1_000_000_000))  # older than any grace
    heads = git(engine.gitdir, "for-each-ref", "--format=%(refname) %(objectname)")
    assert engine.maintain(3600, loose_limit=100_000, pack_limit=100) is None  # not due: nothing ran
    loose_before = object_counts(engine.gitdir)[0]
    sizes = engine.maintain(3600, loose_limit=0, pack_limit=100)  # incremental: loose into a pack
    assert sizes is not None and sizes[1] < sizes[0]
    # one pack; loose only what is unreachable and younger than the grace (the salvage's tree and blob)
    assert object_counts(engine.gitdir)[1] == 1 and object_counts(engine.gitdir)[0] < loose_before / 10
    assert git(engine.gitdir, "for-each-ref", "--format=%(refname) %(objectname)") == heads
    gone = ["git", "--git-dir", str(engine.gitdir), "cat-file", "-e", doomed]
    assert subprocess.run(gone, capture_output=True).returncode != 0
    fsck(engine.gitdir)
    finished_sprint(engine, "s9")  # the engine works on as before, on packed objects and refs
    assert engine.head("sprint/s9")
    engine.maintain(3600, loose_limit=0, pack_limit=100)  # s9's loose objects: a second pack
    assert object_counts(engine.gitdir)[1] == 2
    assert engine.maintain(3600, loose_limit=100, pack_limit=1) is not None  # past the packs: full gc
    assert object_counts(engine.gitdir)[1] == 1
    fsck(engine.gitdir)


def test_maintenance_packs_loose_objects_past_one_limit_and_repacks_all_past_the_other() -> None:
    assert gc_plan(250, 10, 250, 10) is None
    assert gc_plan(251, 1, 250, 10) == "incremental"
    assert gc_plan(0, 11, 250, 10) == "full"
    assert gc_plan(5000, 11, 250, 10) == "full"


# --- what the operator's directories hold, mapped to Sprints (handlers/housekeeping.py) ---------------


def sprint_body(name: str, phase: str, completed: str | None) -> dict[str, object]:
    status = {"phase": phase, **({"completedAt": completed} if completed else {})}
    meta = {"name": name, "namespace": "ns", "creationTimestamp": "2026-12-01T00:00:00Z"}
    return {"metadata": meta, "spec": {"repository": {"url": "/repo.git"}}, "status": status}


def test_the_operator_directories_are_mapped_to_their_sprints_and_orphans_go_by_age(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from sprint_orchestrator.handlers import housekeeping
    from sprint_orchestrator.runtime import tenant_of
    from sprint_orchestrator.settings import Settings

    ctx: Any = SimpleNamespace(settings=Settings(state_dir=tmp_path, config=OrchestratorConfig()))
    bodies = [
        sprint_body("old", "Completed", "2026-12-02T00:00:00Z"),
        sprint_body("new", "Failed", "2026-12-05T00:00:00Z"),
        sprint_body("busy", "Running", None),
    ]
    sprints = [housekeeping._info(ctx, body) for body in bodies]
    paths = {}
    for name in ("old", "new", "busy", "gone"):
        paths[name] = tmp_path / "artifacts" / "ns" / name
        paths[name].mkdir(parents=True)
        log = tmp_path / "logs" / f"so-{name}-t-1-{tenant_of('ns', name)}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text("x")
        paths[f"{name}.log"] = log
    for orphan in (paths["gone"], paths["gone.log"]):
        os.utime(orphan, (NOW.timestamp() - 40 * 86400,) * 2)
    (tmp_path / "logs" / "empty").mkdir()  # the pods runtime's empty mount source: not a log
    items = [item for item, _ in housekeeping._file_items(ctx, sprints)]
    assert {i.where for i in items} == {str(p) for p in paths.values()}
    dropped = {i.where for i in to_prune(items, Policy(keep_sprints=1, max_age_s=30 * 86400), NOW)}
    assert dropped == {str(paths[k]) for k in ("old", "old.log", "gone", "gone.log")}
