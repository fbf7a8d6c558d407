"""The dashboard's diff reads, served by the operator: `GET /internal/v1/diff/{namespace}/{task}`.

In a cluster the dashboard runs in its own Pod, without the operator's clones (they live on the
operator Pod's volume, ReadWriteOnce or an emptyDir). It asks the operator over this endpoint instead:
bound to SPRINT_ORCHESTRATOR_DIFF_ADDRESS:SPRINT_ORCHESTRATOR_DIFF_PORT (off when the port is 0), it
answers only the bearer token in SPRINT_ORCHESTRATOR_DIFF_TOKEN_FILE (a Secret mounted by both Pods;
never a dashboard reader's token). The dashboard names a Task and nothing else: the operator reads the
Task and its Sprint from the API itself, only in the namespaces it watches, and diffs the commits their
status names in its own clone, read-only. The answer is `TaskDiff.to_json()`, or the unified text with
`Accept: text/x-diff`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import GitError, InvalidInput
from ..gitops import diff as gitdiff
from ..kube import SPRINTS, TASKS
from ..review import NoDiff, diff_target

log = logging.getLogger("sprint_orchestrator.operator")
PATH = "/internal/v1/diff/{namespace}/{task}"
TOKEN_MIN = 16
_TOKEN_VARIABLE = "SPRINT_ORCHESTRATOR_DIFF_TOKEN_FILE"


def load_token(path: Path | None) -> str | None:
    """The endpoint's token: the file's content (one line), at least TOKEN_MIN characters. None when
    the file does not exist (an optional Secret not created yet: the endpoint stays off)."""
    if path is None:
        raise InvalidInput(f"{_TOKEN_VARIABLE}: required when SPRINT_ORCHESTRATOR_DIFF_PORT is set")
    if not path.exists():
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{_TOKEN_VARIABLE}: cannot read {path} ({exc})") from None
    if len(token) < TOKEN_MIN or any(c.isspace() for c in token):
        raise InvalidInput(f"{_TOKEN_VARIABLE}: {path} must hold one token of {TOKEN_MIN}+ characters")
    return token


def make_app(ctx: Any, token: str) -> web.Application:
    async def diff(request: web.Request) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            return _error(401, "this endpoint needs the operator's diff token")
        namespace, name = request.match_info["namespace"], request.match_info["task"]
        watched = ctx.settings.namespaces
        if watched and namespace not in watched:
            return _error(404, f"namespace {namespace!r} is not one this operator watches")
        task = await asyncio.to_thread(ctx.kube.get, TASKS, namespace, name)
        if task is None:
            return _error(404, f"task {namespace}/{name} not found")
        sprint_name = str((task.get("spec") or {}).get("sprintRef") or "")
        sprint = (
            await asyncio.to_thread(ctx.kube.get, SPRINTS, namespace, sprint_name) if sprint_name else None
        )
        try:
            target = diff_target(task, sprint, ctx.settings.repository_url)
            found = await asyncio.to_thread(gitdiff.for_target, ctx.settings.trees_dir, target)
        except (NoDiff, GitError) as exc:
            return _error(404, str(exc))
        except InvalidInput as exc:
            return _error(400, str(exc))
        if "text/x-diff" in request.headers.get("Accept", ""):
            return web.Response(text=found.text(), content_type="text/x-diff", charset="utf-8")
        return web.json_response(found.to_json())

    app = web.Application(client_max_size=4096)
    app.router.add_get(PATH, diff)
    return app


async def start(ctx: Any) -> web.AppRunner | None:
    """Serve the endpoint when configured (InvalidInput: a missing or weak token stops the start)."""
    settings = ctx.settings
    if not settings.diff_port:
        return None
    token = load_token(settings.diff_token_file)
    if token is None:
        log.warning(
            "diff endpoint off: %s does not exist (create the Secret sprint-orchestrator-diffs with a "
            "key `token`: manifests/README.md); the dashboard shows no diffs meanwhile",
            settings.diff_token_file,
        )
        return None
    runner = web.AppRunner(make_app(ctx, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.diff_address, settings.diff_port).start()
    log.info("diff endpoint on %s:%s for the dashboard", settings.diff_address, settings.diff_port)
    return runner


def _error(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)
