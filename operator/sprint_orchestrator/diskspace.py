"""PURE: whether an error means a disk has no space left.

One rule for every place that meets a full disk: the operator's own (its clones, worktrees, workspaces,
artifacts: a task's commit waits and is retried, handlers/failures.py `disk_full`) and the remote's
(a push refused, handlers/publish.py). The kernel says ENOSPC (or EDQUOT: a quota); libgit2 and git
put the same words in their messages, so a GitError wrapping one is recognized by its text.
"""

from __future__ import annotations

import errno

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded")


def no_space(error: BaseException | str) -> bool:
    """True when `error` (an exception, its cause chain included, or a message) says a disk is full."""
    if isinstance(error, str):
        text = error.lower()
        return any(words in text for words in NO_SPACE_WORDS)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return True
        if no_space(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False
