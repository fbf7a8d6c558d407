"""Helpers for the git engine's tests: real repositories made with the git CLI, and a crash child.

Run as a script, this module is the child process the kill tests SIGKILL at a random point:
    python tests/_gitrepo.py create|merge ORIGIN ROOT [COUNT]
It prints `ok <sha>` after every ref move it made, so the parent knows which commits must survive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def make_origin(tmp: Path, files: Mapping[str, str | bytes], bare: bool = True) -> Path:
    """A repository with one commit on main; bare (like a server) unless told otherwise."""
    seed = tmp / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    write_files(seed, files)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "initial")
    if not bare:
        return seed
    origin = tmp / "origin.git"
    git(tmp, "clone", "-q", "--bare", str(seed), str(origin))
    return origin


def push_to_origin(origin: Path, tmp: Path, files: Mapping[str, str | bytes], message: str) -> str:
    """Someone else commits to main on the origin; returns the new main commit."""
    other = tmp / f"other-{len(list(tmp.glob('other-*')))}"
    git(tmp, "clone", "-q", str(origin), str(other))
    write_files(other, files)
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", message)
    git(other, "push", "-q", "origin", "main")
    return git(other, "rev-parse", "HEAD")


def fsck(gitdir: Path) -> str:
    """`git fsck --full --strict`; fails on any error (dangling objects are fine)."""
    out = subprocess.run(
        ["git", "--git-dir", str(gitdir), "fsck", "--full", "--strict", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **GIT_ENV},
    )
    if out.returncode != 0 or any(w in out.stderr for w in ("error", "missing", "broken", "corrupt")):
        raise AssertionError(f"git fsck failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def reachable(gitdir: Path) -> set[str]:
    return set(git(gitdir, "rev-list", "--all", "--reflog").split())


def worktree_list(gitdir: Path) -> str:
    return git(gitdir, "worktree", "list", "--porcelain")


def _child(mode: str, origin: str, root: str, count: int) -> None:
    """create: create+commit tasks in a loop. merge: create+commit `count` tasks, then merge them all."""
    from sprint_orchestrator.gitops import GitEngine

    engine = GitEngine.open(origin, root)
    engine.create_sprint("s1")
    done = []
    for i in range(count):
        task = f"{mode}-{os.getpid()}-{i}"
        ws = engine.create_task("s1", task, 1, [f"out/{task}.txt"])
        write_files(ws.workspace, {f"out/{task}.txt": f"{task}\n"})
        result = engine.commit_task(ws, "s1", task, [f"out/{task}.txt"], "Team", "team@example.com")
        print(f"ok {result.commit}", flush=True)
        done.append((task, str(result.commit)))
    print("merging", flush=True)
    for task, commit in done if mode == "merge" else []:
        print(f"ok {engine.merge_task('s1', task, commit).merge_commit}", flush=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1000)
