"""Tar streams in and out of a task Pod, never trusting the Pod.

`pack` writes a directory as a tar stream (without `.git`: the worktree's `.git` file names a host path
that means nothing in a Pod and must never come back). `unpack` reads a tar stream a Pod uploaded into a
fresh directory, checking every member first (`member_problem`): relative paths only, no `..`, no `.git`,
regular files, directories and symlinks whose target stays inside the tree; no hard links, devices or
FIFOs; a cap on the member count and the total size. Files are written by this process (owned by it,
modes masked to 0o755), never by `tarfile.extract`, so a member's owner or set-uid bit never lands.
A tree with any refused member is refused whole: the caller keeps its workspace as it was.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

MAX_BYTES = 1 << 30
MAX_MEMBERS = 100_000
_CHUNK = 1 << 16


class UnsafeTar(ValueError):
    """A result tree that was refused; `problems` names every refused member."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__("; ".join(problems[:20]) + more)
        self.problems = problems


class _Refused(Exception):
    pass


def path_problem(name: str) -> str | None:
    """Why a member's path is refused (absolute, malformed, with `..`), or None; the layer's rules too."""
    if name.startswith("/") or "\\" in name or "\x00" in name:
        return f"{name!r}: absolute or malformed path"
    if ".." in name.split("/"):
        return f"{name!r}: path with '..'"
    return None


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why this member may not be unpacked, or None. Pure: looks only at the member's header."""
    name = member.name
    problem = path_problem(name)
    if problem:
        return problem
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if parts and parts[0] == ".git":
        return f"{name!r}: .git may not come back from a task"
    if member.isdir() or member.isreg():
        return None
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            return f"{name!r}: symlink to an absolute path {target!r}"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname("/".join(parts)), target))
        if resolved == ".." or resolved.startswith("../"):
            return f"{name!r}: symlink {target!r} points outside the workspace"
        return None
    if member.islnk():
        return f"{name!r}: hard link"
    return f"{name!r}: device, FIFO or other special file"


def pack(root: Path, out: IO[bytes]) -> None:
    """Write `root` (without .git) as an uncompressed tar stream to `out`."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(root):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)


def _walk(root: Path) -> Iterator[Path]:
    for entry in sorted(root.iterdir()):
        if entry.parent == root and entry.name == ".git":
            continue
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)


def unpack(stream: IO[bytes], dest: Path, max_bytes: int = MAX_BYTES) -> int:
    """Unpack a tar stream into the new directory `dest`; returns the member count.

    Raises UnsafeTar (naming every refused member) and removes `dest` when any member is refused, the
    tree exceeds `max_bytes` or MAX_MEMBERS, or the stream is not a tar."""
    dest.mkdir(mode=0o755)
    problems: list[str] = []
    total = count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                count += 1
                total += max(member.size, 0)
                problem = member_problem(member)
                if count > MAX_MEMBERS or total > max_bytes:
                    problems.append(f"the tree exceeds {MAX_MEMBERS} members or {max_bytes} bytes")
                    break
                if problem:
                    problems.append(problem)
                elif not problems:
                    _write(tar, member, dest)
    except _Refused as exc:
        problems.append(str(exc))
    except (tarfile.TarError, EOFError, OSError) as exc:
        problems.append(f"not a readable tar stream: {exc}")
    if problems:
        shutil.rmtree(dest, ignore_errors=True)
        raise UnsafeTar(problems)
    return count


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    relative = "/".join(p for p in member.name.split("/") if p not in ("", "."))
    if not relative:
        return
    target = dest / relative
    _check_parent(dest, target)
    if member.isdir():
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif member.issym():
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.symlink(member.linkname, target)
    else:
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise OSError(f"{member.name}: no data")
        fd = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, member.mode & 0o755 | 0o600
        )
        with os.fdopen(fd, "wb") as sink:
            shutil.copyfileobj(source, sink, _CHUNK)


def _check_parent(dest: Path, target: Path) -> None:
    """No earlier member (a symlink, even one pointing inside) may redirect a later one's directory."""
    here = dest
    for part in target.relative_to(dest).parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise _Refused(f"{str(target.relative_to(dest))!r}: a parent directory is a symlink")


def replace_tree(workspace: Path, staged: Path) -> None:
    """Make `workspace` hold exactly what `staged` holds, keeping the workspace's own `.git`."""
    for entry in workspace.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in staged.iterdir():
        os.replace(entry, workspace / entry.name)
    staged.rmdir()
