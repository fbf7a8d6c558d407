"""The operator's clone of the target repository: clone, fetch main, push main (never forced).

Credentials live only in the callbacks object for the duration of a call: a URL carrying a password
is refused, so no secret reaches the clone's config, a status field or a log line.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pygit2

from ..errors import GitError, InvalidInput
from ..lease import fence
from .core import ORCHESTRATOR_REFS, Core
from .results import Credentials, RefChange

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:")


@dataclass(frozen=True)
class Origin:
    url: str
    local: bool
    credentials: Credentials | None = None


def parse_origin(url_or_path: str, credentials: Credentials | None) -> Origin:
    if "://" in url_or_path:
        if urlsplit(url_or_path).password is not None:
            raise InvalidInput("git.repository_url must not contain a password; put it in the git Secret")
        local = url_or_path.startswith("file://")
        return Origin(url_or_path, local, credentials)
    if _SCP_LIKE.match(url_or_path):
        return Origin(url_or_path, False, credentials)
    path = Path(url_or_path).expanduser().resolve()
    if not path.exists():
        raise InvalidInput(f"git.repository_url {url_or_path!r} is neither a URL nor an existing directory")
    return Origin(str(path), True, credentials)


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, credentials: Credentials | None) -> None:
        super().__init__()
        self._credentials = credentials
        self.rejected: dict[str, str] = {}

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        c = self._credentials
        kinds = pygit2.enums.CredentialType
        user = username_from_url or (c.username if c else None) or "git"
        if c and c.ssh_private_key and allowed_types & kinds.SSH_KEY:
            return pygit2.Keypair(user, c.ssh_public_key, c.ssh_private_key, c.ssh_passphrase or "")
        if c and c.password and allowed_types & kinds.USERPASS_PLAINTEXT:
            return pygit2.UserPass(c.username or username_from_url or "x-access-token", c.password)
        if allowed_types & kinds.USERNAME:
            return pygit2.Username(user)
        raise GitError("the remote asked for credentials, but none are configured (git Secret)")

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message


def clone_or_check(origin: Origin, gitdir: Path) -> None:
    """Clone bare into `gitdir` (atomically, via a temporary name) or check the existing clone's origin."""
    if gitdir.exists():
        url = pygit2.Repository(str(gitdir)).remotes["origin"].url
        if url != origin.url:
            raise InvalidInput(
                f"{gitdir} is a clone of {url!r}, not of git.repository_url {origin.url!r}; "
                "use another working_trees_path"
            )
        return
    for leftover in gitdir.parent.glob(f"{gitdir.name}.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    partial = gitdir.parent / f"{gitdir.name}.partial-{os.getpid()}"
    try:
        repo = pygit2.clone_repository(
            origin.url, str(partial), bare=True, callbacks=_Callbacks(origin.credentials)
        )
    except pygit2.GitError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise GitError(f"could not clone {origin.url}: {exc}") from exc
    repo.config["gc.auto"] = 0
    repo.config["core.logAllRefUpdates"] = "always"
    os.rename(partial, gitdir)


def fetch_main(core: Core, origin: Origin) -> list[RefChange]:
    """Fetch main into refs/remotes/origin/main and make the local main mirror it."""
    main = core.main_branch
    remote = core.repo().remotes["origin"]
    try:
        remote.fetch(
            [f"+refs/heads/{main}:refs/remotes/origin/{main}"], callbacks=_Callbacks(origin.credentials)
        )
    except pygit2.GitError as exc:
        raise GitError(f"could not fetch {main} from {origin.url}: {exc}") from exc
    upstream = core.require_head(f"refs/remotes/origin/{main}", "the remote's main branch")
    return mirror_main(core, upstream)


def mirror_main(core: Core, upstream: str) -> list[RefChange]:
    ref = f"refs/heads/{core.main_branch}"
    local = core.head(ref)
    if local == upstream or (local is not None and core.repo().descendant_of(local, upstream)):
        return []  # up to date, or ahead with our own unpushed commits
    changes = []
    if local is not None and not core.repo().descendant_of(upstream, local):
        # Local main has commits the remote lacks: keep them reachable before following the remote.
        keep = f"{ORCHESTRATOR_REFS}/salvage-main/{local[:12]}"
        if core.head(keep) is None:
            changes.append(core.set_ref(keep, local, None, "keep local main commits the remote lacks"))
    changes.append(core.set_ref(ref, upstream, local, "follow the remote's main"))
    return changes


def remote_main(core: Core, origin: Origin) -> str | None:
    """The remote's main as it is now (fetched into refs/remotes/origin/main; the local main untouched),
    or None when it cannot be read."""
    main = core.main_branch
    try:
        core.repo().remotes["origin"].fetch(
            [f"+refs/heads/{main}:refs/remotes/origin/{main}"], callbacks=_Callbacks(origin.credentials)
        )
    except pygit2.GitError:
        return None
    return core.head(f"refs/remotes/origin/{main}")


def push_blocker(core: Core, origin: Origin) -> str | None:
    """Why main must not be pushed to this origin (a checked-out local branch), or None."""
    if origin.local and _is_checked_out_nonbare(Path(origin.url), core.main_branch):
        return (
            f"{origin.url} is a non-bare repository with {core.main_branch} checked out, so it is not "
            f"pushed: pull {core.main_branch} from {core.layout.gitdir} there"
        )
    return None


def push_main(core: Core, origin: Origin) -> str | None:
    """Push main without force; returns None on success, else why the remote refused."""
    fence()  # the remote's main moves only from the replica that holds the Lease
    callbacks = _Callbacks(origin.credentials)
    spec = f"refs/heads/{core.main_branch}:refs/heads/{core.main_branch}"
    try:
        core.repo().remotes["origin"].push([spec], callbacks=callbacks)
    except pygit2.GitError as exc:
        return f"the remote refused the push: {exc}"
    return "; ".join(callbacks.rejected.values()) or None


def _is_checked_out_nonbare(path: Path, branch: str) -> bool:
    try:
        target = pygit2.Repository(str(path))
    except pygit2.GitError:
        return False
    return not target.is_bare and not target.head_is_unborn and target.head.name == f"refs/heads/{branch}"
