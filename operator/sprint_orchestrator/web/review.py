"""Review like a merge request: a task's diff, "request changes" with comments, approval of the exact
commit reviewed. Reads come from the operator's clone (read-only), or where the dashboard has none (its
own Pod) from the operator's internal diff endpoint (handlers/diffs.py, `--operator-url`); actions are
nonce annotations, as `sprintctl` and `kubectl annotate` write them, and need a token."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from urllib.parse import quote

import aiohttp
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .. import (
    ANNOTATION_APPROVE,
    ANNOTATION_APPROVE_COMMIT,
    ANNOTATION_REQUEST_CHANGES,
    ANNOTATION_REVIEW,
    board,
)
from ..errors import GitError, InvalidInput
from ..gitops import diff as gitdiff
from ..kube import TASKS
from ..nonces import annotate
from ..review import NoDiff, diff_target, parse_review
from ..status import Column
from .context import Dashboard, dashboard, find_sprint, find_task, require_token
from .hub import Body as Resource

router = APIRouter(prefix="/api")
Dash = Annotated[Dashboard, Depends(dashboard)]
Authorized = [Depends(require_token)]
REVIEW_EXAMPLE = {
    "message": "The gate fails: see the comment.",
    "comments": [{"path": "textstats/buggy.py", "line": 3, "body": "This returns the wrong value."}],
    "by": "alice",
}


def task_diff(dash: Dashboard, task: Resource, sprint: Resource | None) -> gitdiff.TaskDiff:
    if dash.trees_dir is None:
        raise HTTPException(404, "this dashboard has no access to the operator's clones")
    try:
        return gitdiff.for_target(dash.trees_dir, diff_target(task, sprint, dash.repository_url))
    except (NoDiff, GitError) as exc:
        raise HTTPException(404, str(exc)) from None


async def operator_diff(dash: Dashboard, task: Resource, as_text: bool) -> Any:
    """The diff as the operator serves it (handlers/diffs.py): the dashboard in its own Pod has no
    clone. Only the Task's namespace and name are sent; the operator resolves the rest itself."""
    if not dash.operator_token:
        raise HTTPException(
            503,
            f"no token for the operator's diff endpoint: {dash.operator_token_file} does not exist (create "
            "the Secret sprint-orchestrator-diffs with a key `token`: manifests/README.md)",
        )
    meta = task["metadata"]
    path = f"/internal/v1/diff/{quote(meta['namespace'], safe='')}/{quote(meta['name'], safe='')}"
    accept = "text/x-diff" if as_text else "application/json"
    headers = {"Authorization": f"Bearer {dash.operator_token}", "Accept": accept}
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(str(dash.operator_url).rstrip("/") + path, headers=headers) as answer,
        ):
            body = await answer.read()
            kind = answer.headers.get("Content-Type", "")
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise HTTPException(502, f"the operator's diff endpoint did not answer ({exc})") from None
    if status != 200:
        detail = body.decode("utf-8", "replace")[:2000]
        if "json" in kind:
            detail = str(json.loads(body).get("detail") or detail)
        raise HTTPException(404 if status == 404 else 502, f"the operator: {detail}")
    return body.decode("utf-8") if as_text else json.loads(body)


@router.get(
    "/tasks/{task_id}/diff",
    summary="A task's change against its base (JSON, or text/x-diff by the Accept header)",
    responses={200: {"content": {"application/json": {}, "text/x-diff": {}}}},
)
async def get_diff(dash: Dash, task_id: str, request: Request) -> Response:
    task = find_task(dash, task_id)
    as_text = "text/x-diff" in request.headers.get("accept", "")
    if dash.operator_url:
        answer = await operator_diff(dash, task, as_text)
        if as_text:
            return PlainTextResponse(str(answer), media_type="text/x-diff; charset=utf-8")
        found: dict[str, Any] = dict(answer)
    else:
        sprint = await find_sprint(dash, str(task["spec"].get("sprintRef") or ""))
        diff = await asyncio.to_thread(task_diff, dash, task, sprint)
        if as_text:
            return PlainTextResponse(diff.text(), media_type="text/x-diff; charset=utf-8")
        found = diff.to_json()
    status = task.get("status") or {}
    body = {
        "name": task["metadata"]["name"],
        "task_id": board.task_id(task),
        "phase": status.get("phase"),
        "attempt": status.get("attempt"),
        "reviews": status.get("reviews") or [],
        **found,
    }
    return JSONResponse(body)


def _in_review(task: Resource, verb: str) -> None:
    column = board.column_of(task)
    if column != Column.REVIEW:
        raise HTTPException(409, f"task {board.task_id(task)!r} is {column}: {verb} needs review")


def _reviewed_commit(task: Resource, given: Any, verb: str) -> str:
    """The commit a reviewer acts on: the one they name (it must still be the task's), else the
    task's commit now."""
    current = str((task.get("status") or {}).get("commit") or "")
    if given is None or given == "":
        if not current:
            raise HTTPException(409, f"task {board.task_id(task)!r} has no commit to {verb}")
        return current
    if given != current:
        raise HTTPException(
            409,
            f"task {board.task_id(task)!r} is now at commit {current[:12] or 'none'}, not the "
            f"{str(given)[:12]} you reviewed: review it again",
        )
    return current


@router.post(
    "/tasks/{task_id}/request-changes",
    status_code=202,
    dependencies=Authorized,
    summary="Send a task in review back to its agent with comments",
)
async def request_changes(
    dash: Dash, task_id: str, review: Annotated[dict[str, Any], Body(examples=[REVIEW_EXAMPLE])]
) -> dict[str, Any]:
    """A new attempt starts from the reviewed commit's tree, with the review quoted in TASK.md.
    Comments: `{"path", "line", "body"}` on a line, `{"path", "body"}` on a file, `{"body"}` on the
    task. `commit` (optional) is the commit reviewed: refused (409) if the task has moved since."""
    task = find_task(dash, task_id)
    _in_review(task, "request changes")
    parsed = parse_review({"by": "dashboard", **review}, "body")
    commit = _reviewed_commit(task, parsed.commit, "review")
    annotation = parse_review({**parsed.dump(), "commit": commit}).annotation()
    message = (
        f"changes to task {board.task_id(task)} requested on the dashboard by {parsed.by} "
        f"({len(parsed.comments)} comment(s)) on commit {commit[:12]}"
    )
    nonce = await asyncio.to_thread(
        annotate,
        dash.kube,
        TASKS,
        task,
        ANNOTATION_REQUEST_CHANGES,
        "ChangesRequested",
        message,
        {ANNOTATION_REVIEW: annotation},
    )
    name = task["metadata"]["name"]
    return {"name": name, "requested": "request-changes", "nonce": nonce, "commit": commit}


@router.post("/tasks/{task_id}/approve", status_code=202, dependencies=Authorized, summary="Approve")
async def approve_task(
    dash: Dash, task_id: str, body: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, Any]:
    """Merge the task as reviewed: the operator merges exactly `commit` (default: the task's commit
    now) and refuses if the task branch has moved from it."""
    task = find_task(dash, task_id)
    _in_review(task, "approve")
    given = (body or {}).get("commit")
    if given is not None and not isinstance(given, str):
        raise InvalidInput("commit: expected a commit id string")
    commit = _reviewed_commit(task, given, "approve")
    message = f"approve of task {board.task_id(task)} at {commit[:12]} requested on the dashboard"
    nonce = await asyncio.to_thread(
        annotate,
        dash.kube,
        TASKS,
        task,
        ANNOTATION_APPROVE,
        "ApproveRequested",
        message,
        {ANNOTATION_APPROVE_COMMIT: commit},
    )
    return {"name": task["metadata"]["name"], "requested": "approve", "nonce": nonce, "commit": commit}
