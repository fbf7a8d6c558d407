"""An agent CLI's session, kept from one attempt to the next so a review can resume it.

Claude Code and Codex keep each conversation in a JSONL transcript under their configuration
directory (CLAUDE_CONFIG_DIR, CODEX_HOME). Their adapters point that directory into the workspace,
at `.sprint/session/<cli>`, so it leaves the container on both runtimes as the workspace does. After
the run the operator takes out the one transcript of the session the CLI reported on stdout, checked
as everything the agent leaves (no symlink anywhere on its path, a regular file, size-capped), into
its own state directory, and removes the directory from the workspace before the commit: it never
reaches git. When a reviewer requests changes, the next attempt gets that transcript back at the path
the CLI reads, built here from the session id alone, and the CLI resumes it with the review as its
next prompt (`claude --resume ID`, `codex exec resume ID`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..review import render_reviews

SESSION_DIR = ".sprint/session"  # in the workspace; removed before the commit
CONTAINER_WORKSPACE = "/workspace"
TRANSCRIPT_MAX = 32 << 20  # a long agent session is a few MB
PROMPT_MAX = 32_000  # one argv string (Linux caps each at 128 KiB)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CODEX_ROLLOUT = re.compile(r"rollout-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-(?P<id>[0-9a-f-]{36})\.jsonl")
_DIGITS = (re.compile(r"\d{4}"), re.compile(r"\d{2}"), re.compile(r"\d{2}"))
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
# The configuration directory each CLI is pointed at, and the variable that points it there.
HOMES = {"claude-code": ("CLAUDE_CONFIG_DIR", "claude"), "codex": ("CODEX_HOME", "codex")}
# The CLIs whose own usage report covers the whole session, not only the resumed run: Claude Code's
# result event (`modelUsage`, `total_cost_usd`); Codex reports each turn of this run.
WHOLE_SESSION_REPORTS = frozenset({"claude-code"})


@dataclass(frozen=True)
class Resume:
    """How an attempt resumes: the session to continue and the prompt that continues it."""

    session_id: str
    prompt: str
    previous_attempt: int


@dataclass(frozen=True)
class Kept:
    """A transcript the operator kept: which CLI, its session id, and the attempt that left it."""

    cli: str
    session_id: str
    attempt: int

    def dump(self) -> dict[str, Any]:
        return {"cli": self.cli, "id": self.session_id, "attempt": self.attempt}


def environment(cli: str) -> dict[str, str]:
    """The variable that puts the CLI's configuration directory into the workspace."""
    variable, name = HOMES[cli]
    return {variable: f"{CONTAINER_WORKSPACE}/{SESSION_DIR}/{name}"}


def session_id_of(cli: str, stdout: str | None) -> str | None:
    """PURE: the session the CLI reported on stdout (Claude stream-json `session_id`, the last one;
    Codex `thread.started.thread_id`), or None. Agent output: only a UUID is accepted."""
    found: str | None = None
    for line in (stdout or "").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        value = record.get("session_id") if cli == "claude-code" else None
        if cli == "codex" and record.get("type") == "thread.started":
            value = record.get("thread_id")
        if isinstance(value, str) and _UUID.fullmatch(value):
            found = value
    return found


def transcript_path(cli: str, session_id: str, workspace: Path) -> tuple[str, ...] | None:
    """Where the CLI wrote the transcript, relative to the workspace, or None when it is not there.
    Claude: projects/<the cwd with / as ->/<id>.jsonl. Codex: sessions/YYYY/MM/DD/rollout-…-<id>.jsonl,
    found by listing those directories without following a symlink."""
    if not _UUID.fullmatch(session_id):
        return None
    base = (*SESSION_DIR.split("/"), HOMES[cli][1])
    if cli == "claude-code":
        return (*base, "projects", CONTAINER_WORKSPACE.replace("/", "-"), f"{session_id}.jsonl")
    return _find_rollout(workspace, (*base, "sessions"), session_id)


def harvest(cli: str, stdout: str | None, workspace: Path, store: Path, attempt: int) -> Kept | None:
    """Keep the attempt's transcript in `store` (the operator's state), then remove the session
    directory from the workspace. None (and nothing kept) when the CLI reported no session, or its
    transcript is missing, a symlink, not a regular file or over TRANSCRIPT_MAX."""
    (store / "session.json").unlink(missing_ok=True)  # a stale session is never resumed
    try:
        session_id = session_id_of(cli, stdout)
        parts = transcript_path(cli, session_id, workspace) if session_id else None
        data = _read_beneath(workspace, parts) if parts else None
        if session_id is None or parts is None or data is None:
            return None
        store.mkdir(parents=True, exist_ok=True, mode=0o700)
        kept = Kept(cli, session_id, attempt)
        rel = "/".join(parts[len(SESSION_DIR.split("/")) :])
        tmp = store / "transcript.jsonl.tmp"
        tmp.write_bytes(data)
        tmp.replace(store / "transcript.jsonl")
        meta = {**kept.dump(), "path": rel}
        (store / "session.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        return kept
    finally:
        remove_session_dir(workspace)


def stored(store: Path) -> tuple[Kept, str] | None:
    """The transcript kept for a task (written by `harvest`, so trusted): what it is and its path."""
    try:
        meta = json.loads((store / "session.json").read_text(encoding="utf-8"))
        kept = Kept(str(meta["cli"]), str(meta["id"]), int(meta["attempt"]))
        rel = str(meta["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _UUID.fullmatch(kept.session_id) or not (store / "transcript.jsonl").is_file():
        return None
    return kept, rel


def restore(workspace: Path, store: Path, rel: str) -> bool:
    """Put the kept transcript back where the CLI reads it in a new attempt's workspace. Whatever the
    workspace's tree has at `.sprint/session` is removed first; a `.sprint` that is not a plain
    directory (a symlink from the repository) refuses the restore (False)."""
    sprint = workspace / ".sprint"
    if sprint.is_symlink() or (sprint.exists() and not sprint.is_dir()):
        return False
    remove_session_dir(workspace)
    target = workspace / SESSION_DIR / rel
    if any(p in ("", ".", "..") for p in rel.split("/")):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store / "transcript.jsonl", target, follow_symlinks=False)
    return True


def remove_session_dir(workspace: Path) -> None:
    """Remove `.sprint/session` (a symlink is unlinked, never followed) and an emptied `.sprint`."""
    sprint = workspace / ".sprint"
    if sprint.is_symlink() or not sprint.is_dir():
        return
    session = workspace / SESSION_DIR
    if session.is_symlink() or session.is_file():
        session.unlink()
    elif session.is_dir():
        shutil.rmtree(session, ignore_errors=True)
    if not any(sprint.iterdir()):
        sprint.rmdir()


def prepare(workspace: Path, cli: str, store: Path, reviews: list[Mapping[str, Any]] | None) -> Resume | None:
    """Before an attempt of a resumable CLI: a fresh session directory in the workspace (the CLI's
    configuration directory must exist) and, when changes were requested and a transcript of the same
    CLI was kept, that transcript in it: the Resume to start with. None: a fresh session."""
    kept = stored(store) if reviews else None
    sprint = workspace / ".sprint"
    if sprint.is_symlink() or (sprint.exists() and not sprint.is_dir()):
        return None  # the CLI then keeps its default directory: no session survives this attempt
    remove_session_dir(workspace)
    if kept is not None and kept[0].cli == cli and restore(workspace, store, kept[1]):
        return Resume(kept[0].session_id, resume_prompt(reviews or []), kept[0].attempt)
    (workspace / SESSION_DIR / HOMES[cli][1]).mkdir(parents=True, exist_ok=True)
    return None


def resume_prompt(reviews: list[Mapping[str, Any]]) -> str:
    """PURE: the next prompt of a resumed session: the latest review, quoted as data."""
    latest = dict(reviews[-1]) if reviews else {}
    text = render_reviews([latest]).strip() if latest else ""
    intro = (
        "Your change was reviewed and changes were requested. TASK.md in the current directory has been "
        "updated with the review; your workspace holds the files of your previous attempt. Make the "
        "requested changes, then update RESULTS.md. Do not run git commands.\n\n"
    )
    if len(text) > PROMPT_MAX:
        text = text[:PROMPT_MAX] + "\n\n(the review goes on in TASK.md)"
    return intro + text


def _find_rollout(workspace: Path, base: tuple[str, ...], session_id: str) -> tuple[str, ...] | None:
    found: tuple[str, ...] | None = None

    def walk(parts: tuple[str, ...], depth: int) -> None:
        nonlocal found
        try:
            entries = list(os.scandir(workspace.joinpath(*parts)))
        except OSError:
            return
        for entry in sorted(entries, key=lambda e: e.name)[:400]:
            if depth < 3:
                if _DIGITS[depth].fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                    walk((*parts, entry.name), depth + 1)
            elif (m := _CODEX_ROLLOUT.fullmatch(entry.name)) and m.group("id") == session_id:
                found = (*parts, entry.name)

    walk(base, 0)
    return found


def _read_beneath(root: Path, parts: tuple[str, ...]) -> bytes | None:
    """The bytes of root/parts..., opened one directory at a time without following any symlink;
    None when a component is missing, a symlink, or the file is not regular or over TRANSCRIPT_MAX."""
    fds: list[int] = []
    try:
        fds.append(os.open(root, _DIR_FLAGS))
        for name in parts[:-1]:
            fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fds[-1])
    except OSError:
        return None
    finally:
        for opened in fds:
            os.close(opened)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > TRANSCRIPT_MAX:
            return None
        data = os.read(fd, TRANSCRIPT_MAX + 1) if info.st_size else b""
        while len(data) < info.st_size:
            chunk = os.read(fd, TRANSCRIPT_MAX + 1 - len(data))
            if not chunk:
                break
            data += chunk
        return None if len(data) > TRANSCRIPT_MAX else data
    finally:
        os.close(fd)
