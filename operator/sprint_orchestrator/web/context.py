"""What every route needs: the Kubernetes adapter, the hub, the action tokens; and lookups that
answer 404/409 with a sentence naming what was not found."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from ..errors import InvalidInput
from ..kube import SPRINTS, Kube
from .hub import Body, Hub


@dataclass
class Dashboard:
    kube: Kube
    hub: Hub
    tokens: frozenset[str] = field(default_factory=frozenset, repr=False)
    read_tokens: frozenset[str] = field(default_factory=frozenset, repr=False)  # empty: reads are open
    roots: tuple[Path, ...] = ()  # logs and artifacts are served only from under these
    trees_dir: Path | None = None  # the operator's clones, read for task diffs (None: no diffs here)
    repository_url: str | None = None  # git.repository_url: the repository of Sprints that name none
    operator_url: str | None = None  # the operator's diff endpoint (handlers/diffs.py), in a cluster
    operator_token: str | None = field(default=None, repr=False)
    operator_token_file: str = ""  # where the token was looked for (named when it is missing)

    @property
    def namespace(self) -> str:
        return self.hub.namespace


def load_tokens(path: Path | None, option: str = "--token-file") -> frozenset[str]:
    """Tokens, one per line ('#' comments and blank lines ignored)."""
    if path is None:
        return frozenset()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot read it ({exc.strerror})") from exc
    tokens = frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if not tokens:
        raise InvalidInput(f"{option} {path}: no token in the file (one token per line)")
    return tokens


def dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


def require_token(request: Request) -> None:
    """Actions (create, start, retry, approve) need `Authorization: Bearer <token>`."""
    tokens = dashboard(request).tokens
    if not tokens:
        raise HTTPException(403, "actions are disabled: start the dashboard with --token-file FILE")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given, t) for t in tokens):
        raise HTTPException(
            401,
            "this action needs a valid token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def find_sprint(dash: Dashboard, key: str) -> Body:
    """A Sprint by name or PRD sprint id: from the watch's cache, else straight from the API."""
    found = dash.hub.sprint(key)
    if found is None:
        found = await asyncio.to_thread(dash.kube.get, SPRINTS, dash.namespace, key)
    if found is None:
        raise HTTPException(404, f"sprint {key!r} not found in namespace {dash.namespace!r}")
    return found


def find_task(dash: Dashboard, key: str) -> Body:
    """A Task by resource name, by task id when unique, or by "{sprint}:{task id}"."""
    found = dash.hub.find_tasks(key)
    if not found:
        raise HTTPException(404, f"task {key!r} not found in namespace {dash.namespace!r}")
    if len(found) > 1:
        names = ", ".join(sorted(t["metadata"]["name"] for t in found))
        raise HTTPException(409, f"task id {key!r} is in several sprints ({names}): use SPRINT:{key}")
    return found[0]


def problems_detail(exc: InvalidInput) -> list[dict[str, Any]]:
    """422 detail entries {path, msg} from problems like "tasks[0].task_id: required field"."""
    out = []
    for problem in exc.problems:
        path, sep, msg = problem.partition(": ")
        out.append({"path": path, "msg": msg} if sep else {"path": "", "msg": problem})
    return out
