"""Sprint and task branches, task workspaces, and commits on behalf of the task team."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2

from ..diskspace import no_space
from ..errors import DiskFull, GitError, InvalidInput
from . import worktrees
from .core import (
    ORCHESTRATOR_REFS,
    Core,
    sprint_branch,
    sprint_worktree_name,
    task_branch,
    task_worktree_name,
)
from .recovery import salvage
from .results import CommitResult, RefChange, SprintRefs, TaskWorkspace
from .snapshot import snapshot
from .trees import (
    changed_paths,
    check_no_symlink_prefix,
    count_files,
    export_paths,
    prepare_parent,
    remove_path,
    sparse_paths,
)
from .validate import check_branch_name, check_globs, check_ref_component, check_repo_path, check_repo_paths


@dataclass(frozen=True)
class WorkspacePolicy:
    """When a workspace is the whole tree, and what a sparse one holds besides the listed files."""

    full_max_files: int = 5000
    max_siblings: int = 200
    context_globs: tuple[str, ...] = ()


def create_sprint(core: Core, sprint: str, owner: str = "") -> SprintRefs:
    check_ref_component(sprint, "sprint_id")
    ref = f"refs/heads/{sprint_branch(sprint)}"
    with core.lock.held():
        if owner:
            _claim(core, sprint, owner)
        main_head = core.require_head(f"refs/heads/{core.main_branch}", "the main branch")
        changes = []
        if core.head(ref) is None:
            changes.append(core.set_ref(ref, main_head, None, "create sprint branch", sprint))
        path = core.layout.sprint_worktree(sprint)
        if not worktrees.ensure(core, sprint_worktree_name(sprint), path, sprint_branch(sprint)):
            worktrees.resync(path)
        head = core.require_head(ref, "sprint branch")
        base = str(core.repo().merge_base(head, main_head))
    return SprintRefs(sprint_branch(sprint), path, base, tuple(changes))


def _claim(core: Core, sprint: str, owner: str) -> None:
    """The first owner of a sprint id in this repository keeps it: a Sprint in another namespace with the
    same sprintId must not take over its branch, worktree or merges."""
    path = core.layout.sprint_owner(sprint)
    current = path.read_text().strip() if path.is_file() else ""
    if current and current != owner:
        raise InvalidInput(
            f"spec.sprintId {sprint!r} is already used in this repository by the Sprint {current}; "
            "choose another sprintId"
        )
    if not current:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(owner + "\n")
        tmp.replace(path)


def create_task(
    core: Core,
    policy: WorkspacePolicy,
    sprint: str,
    task: str,
    attempt: int,
    files: Sequence[str],
    context_globs: Sequence[str] = (),
    start_from: str | None = None,
    base: str | None = None,
) -> TaskWorkspace:
    """A task attempt's branch and workspace, from the sprint head; or, when a reviewer asked for
    changes, from `start_from` (the previous attempt's commit, so the team continues its work), the
    task's change still counted from `base` (the sprint commit its first attempt started from)."""
    _check_task(sprint, task, attempt)
    files = check_repo_paths(files, "files_to_modify")
    globs = check_globs([*policy.context_globs, *context_globs], "context_globs")
    task_dir = core.layout.task_dir(sprint, task, attempt)
    # Held throughout, export included, so recover() never mistakes a creation in flight for a dead one.
    with core.lock.held():
        existing = _load_workspace(task_dir)
        if existing is not None:
            return existing
        sprint_head = core.require_head(f"refs/heads/{sprint_branch(sprint)}", "sprint branch")
        start = sprint_head if start_from is None else str(core.commit(start_from, "start_from").id)
        continued = start_from is not None and base is not None and start != base
        if continued and not core.repo().descendant_of(start, str(core.commit(str(base), "base").id)):
            raise InvalidInput(f"start_from {start} does not descend from base {base}")
        tree = core.commit(start, "start commit").tree
        for path in files:
            check_no_symlink_prefix(tree, path, "files_to_modify")
        sparse = count_files(tree, policy.full_max_files) > policy.full_max_files
        name = task_worktree_name(sprint, task, attempt)
        changes = _retire_other_attempts(core, sprint, task, attempt)
        changes += _start_branch(core, sprint, task, start, name, task_dir)
        worktree = None if sparse else task_dir / "worktree"
        if worktree is not None:
            worktrees.ensure(core, name, worktree, task_branch(sprint, task), reuse=False)
        paths = sparse_paths(tree, files, globs, policy.max_siblings) if sparse else None
        workspace = _prepare_workspace(core, tree, task_dir / "workspace", paths, files)
        ws = TaskWorkspace(
            sprint,
            task,
            attempt,
            task_branch(sprint, task),
            worktree,
            workspace,
            sprint_head if start_from is None else (base or start),
            sparse,
            tuple(changes),
        )
        worktrees.write_json(task_dir / "manifest.json", _manifest(ws, paths))
        (core.layout.journal / f"{name}.json").unlink(missing_ok=True)
    return ws


def _prepare_workspace(
    core: Core, tree: pygit2.Tree, workspace: Path, paths: set[str] | None, files: Sequence[str]
) -> Path:
    remove_path(workspace)
    workspace.mkdir(parents=True)
    export_paths(core.repo(), tree, workspace, paths)
    for path in files:
        prepare_parent(workspace, path)  # so the team can create new files where it was told to
    return workspace


def _check_task(sprint: str, task: str, attempt: int) -> None:
    check_ref_component(sprint, "sprint_id")
    check_ref_component(task, "task_id")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 1 <= attempt <= 10_000:
        raise InvalidInput(f"attempt {attempt!r} must be an integer from 1 to 10000")


def _retire_other_attempts(core: Core, sprint: str, task: str, attempt: int) -> list[RefChange]:
    """Earlier attempts hold the task branch in their worktrees: salvage their work, then drop them,
    worktree, workspace and all (the end of the sprint cleans only the last attempt: an earlier one's
    directory left here would outlive the sprint with no owner)."""
    changes = []
    for other in (core.layout.root / "tasks" / sprint / task).glob("*"):
        if other.name.isdigit() and int(other.name) != attempt and other.is_dir():
            name = task_worktree_name(sprint, task, int(other.name))
            changes += salvage(core, sprint, task, int(other.name))
            worktrees.drop(core, name, other / "worktree")
            remove_path(other)
            (core.layout.journal / f"{name}.json").unlink(missing_ok=True)
    return changes


def _start_branch(
    core: Core, sprint: str, task: str, sprint_head: str, name: str, task_dir: Path
) -> list[RefChange]:
    """Point the task branch at the sprint head (or the commit a continued attempt starts from),
    keeping commits of an earlier attempt reachable."""
    ref = f"refs/heads/{task_branch(sprint, task)}"
    head = core.head(ref)
    worktrees.write_json(
        core.layout.journal / f"{name}.json",
        {
            "branch": ref,
            "created": head is None,
            "base": sprint_head,
            "task_dir": str(task_dir),
            "worktree": name,
        },
    )
    if head == sprint_head:
        return []
    if head is None:
        return [core.set_ref(ref, sprint_head, None, "create task branch", sprint, task)]
    changes = []
    if not core.repo().descendant_of(sprint_head, head):
        keep = f"{ORCHESTRATOR_REFS}/salvage/{sprint}/{task}/branch-{head[:12]}"
        if core.head(keep) is None:
            changes.append(core.set_ref(keep, head, None, "keep an earlier attempt's commits", sprint, task))
    changes.append(core.set_ref(ref, sprint_head, head, "restart task branch from sprint head", sprint, task))
    return changes


def _manifest(ws: TaskWorkspace, paths: set[str] | None) -> dict[str, object]:
    return {
        "sprint": ws.sprint_id,
        "task": ws.task_id,
        "attempt": ws.attempt,
        "branch": ws.branch,
        "worktree": None if ws.worktree is None else str(ws.worktree),
        "workspace": str(ws.workspace),
        "base_commit": ws.base_commit,
        "sparse": ws.sparse,
        "paths": None if paths is None else sorted(paths),
    }


def _load_workspace(task_dir: Path) -> TaskWorkspace | None:
    data = worktrees.read_json(task_dir / "manifest.json")
    if data is None:
        return None
    worktree = data["worktree"]
    return TaskWorkspace(
        data["sprint"],
        data["task"],
        int(data["attempt"]),
        data["branch"],
        None if worktree is None else Path(worktree),
        Path(data["workspace"]),
        data["base_commit"],
        bool(data["sparse"]),
    )


def commit_task(
    core: Core,
    ws: TaskWorkspace,
    sprint: str,
    task: str,
    files: Sequence[str],
    author_name: str,
    author_email: str,
) -> CommitResult:
    """Commit the workspace on the task branch. A disk that fills on the way raises DiskFull: nothing of
    the workspace is touched, a loose object written whole before it stays unreferenced (git writes each
    through a temporary file, and drops its lock files on a failure), and the next call commits again
    from the start, or finds the commit made and finishes the worktree's update."""
    try:
        return _commit_task(core, ws, sprint, task, files, author_name, author_email)
    except (OSError, pygit2.GitError, GitError, DiskFull) as exc:  # DiskFull: of a ref move
        if not no_space(exc):
            raise
        raise DiskFull(
            f"no space left on device while committing the work of attempt {ws.attempt} of task {task} "
            f"({exc})"
        ) from exc


def _commit_task(
    core: Core,
    ws: TaskWorkspace,
    sprint: str,
    task: str,
    files: Sequence[str],
    author_name: str,
    author_email: str,
) -> CommitResult:
    _check_task(sprint, task, ws.attempt)
    if (sprint, task) != (ws.sprint_id, ws.task_id):
        raise InvalidInput(f"the workspace belongs to {ws.sprint_id}/{ws.task_id}, not {sprint}/{task}")
    files = check_repo_paths(files, "files_to_modify")
    author = _signature(author_name, author_email)
    data = worktrees.read_json(core.layout.task_dir(sprint, task, ws.attempt) / "manifest.json")
    if data is None:
        raise GitError(f"no prepared workspace for task {task} of sprint {sprint}; call create_task first")
    if Path(data["workspace"]) != ws.workspace:
        raise InvalidInput(
            f"{ws.workspace} is not the prepared workspace of task {task}; use the one create_task returned"
        )
    ref = f"refs/heads/{task_branch(sprint, task)}"
    head = core.require_head(ref, "task branch")
    repo = core.repo()
    base = core.commit(head, "task head").tree
    scope = None if data["paths"] is None else {*data["paths"], *files}
    refused: list[str] = []
    tree_id = snapshot(repo, base, ws.workspace, scope, refused)
    if tree_id == base.id and head != ws.base_commit:
        # Committed already (an operator killed before it recorded the commit): the same result again,
        # so its out-of-scope and changed files are not lost.
        started = core.commit(ws.base_commit, "task base").tree
        changed = changed_paths(repo, started, base)
        out_of_scope = [p for p in changed if p not in set(files)]
        with core.lock.held():
            _resync_task_worktree(ws)  # its update may be what failed (a full disk)
        return CommitResult(head, changed, out_of_scope, False, refused=tuple(refused))
    if tree_id == base.id:
        return CommitResult(None, [], [], True, refused=tuple(refused))
    # From where the task started (a continued attempt's own commit holds earlier attempts' work).
    started = core.commit(ws.base_commit, "task base").tree if head != ws.base_commit else base
    changed = changed_paths(repo, started, repo[tree_id])  # type: ignore[arg-type]
    message = (
        f"Task {task} of sprint {sprint} (attempt {ws.attempt})\n\n"
        f"Changes by the task team, committed by the Sprint Orchestrator.\n\n"
        f"Sprint: {sprint}\nTask: {task}\nAttempt: {ws.attempt}\n"
    )
    commit = str(repo.create_commit(None, author, core.committer(), message, tree_id, [pygit2.Oid(hex=head)]))
    with core.lock.held():
        change = core.set_ref(ref, commit, head, "commit task workspace", sprint, task)
        _resync_task_worktree(ws)
    out_of_scope = [p for p in changed if p not in set(files)]
    return CommitResult(commit, changed, out_of_scope, False, (change,), tuple(refused))


def _resync_task_worktree(ws: TaskWorkspace) -> None:
    """Called under the lock: recover() must not see the worktree's index.lock as stale."""
    if ws.worktree is not None and ws.worktree.exists():
        worktrees.resync(ws.worktree)


_BAD_IDENTITY = re.compile(r"[<>\x00-\x1f\x7f]")


def _signature(name: str, email: str) -> pygit2.Signature:
    for field, value in (("author_name", name), ("author_email", email)):
        if not isinstance(value, str) or not value.strip() or _BAD_IDENTITY.search(value) or len(value) > 200:
            raise InvalidInput(
                f"{field} {value!r} must be 1-200 characters without '<', '>' or control chars"
            )
    return pygit2.Signature(name, email)


def commit_file(core: Core, branch: str, path: str, content: bytes, message: str) -> str:
    """Commit one file onto `branch` without a checkout (the sprint report); CAS on the branch head."""
    check_branch_name(branch, "branch")
    check_repo_path(path, "path")
    ref = f"refs/heads/{branch}"
    repo = core.repo()
    with core.lock.held():
        head = core.require_head(ref, "branch")
        tree = core.commit(head, "branch head").tree
        check_no_symlink_prefix(tree, path, "path")
        index = pygit2.Index()
        index.read_tree(tree)
        index.add(pygit2.IndexEntry(path, repo.create_blob(content), pygit2.enums.FileMode.BLOB))
        tree_id = index.write_tree(repo)
        if tree_id == tree.id:
            return head
        sig = core.committer()
        commit = str(repo.create_commit(None, sig, sig, message, tree_id, [pygit2.Oid(hex=head)]))
        core.set_ref(ref, commit, head, f"commit {path}")
        _resync_branch_worktree(core, branch)
    return commit


def _resync_branch_worktree(core: Core, branch: str) -> None:
    if branch.startswith("sprint/") and branch.count("/") == 1:
        sprint = branch.split("/", 1)[1]
        path = core.layout.sprint_worktree(sprint)
        if worktrees.is_healthy(core, sprint_worktree_name(sprint), path):
            worktrees.resync(path)
