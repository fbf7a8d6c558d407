"""The PRD's REST API (plus the reads our pages use). Reads come from the shared watch's cache;
actions go to the API server as the CLI's do (spec.suspend, nonce annotations) and need a token."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import JSONResponse

from .. import ANNOTATION_RETRY, board, report
from ..errors import InvalidInput
from ..kaiban.state import team_state
from ..kube import SPRINTS, TASKS
from ..nonces import annotate
from ..prd import manifest_from_prd
from ..status import Column
from .context import Dashboard, dashboard, find_sprint, find_task, problems_detail, require_token
from .reports import charts

router = APIRouter(prefix="/api")
Dash = Annotated[Dashboard, Depends(dashboard)]
Authorized = [Depends(require_token)]
PRD_EXAMPLE = {
    "sprint_id": "7",
    "sprint_name": "Word counts",
    "tasks": [{"task_id": "t1", "title": "Count words", "priority": "high", "estimated_tokens": 20000}],
    "max_parallel_tasks": 2,
    "orchestrator": {"team": {"type": "claude-code", "model": "claude-sonnet-4-5"}},
}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@router.post("/sprints", status_code=201, dependencies=Authorized, summary="Create a (suspended) Sprint")
async def create_sprint(
    dash: Dash, definition: Annotated[dict[str, Any], Body(examples=[PRD_EXAMPLE])]
) -> JSONResponse:
    """The planning system's sprint JSON becomes a Sprint resource, suspended until
    `PUT /api/sprints/{id}/start`. An optional `orchestrator` key holds Sprint spec fields the PRD
    format has no place for (camelCase, e.g. {"team": {"type": "codex"}}); without a team the
    operator's default team runs it (claude-code unless configured)."""
    extra = definition.pop("orchestrator", None) or {}
    try:
        if not isinstance(extra, dict):
            raise InvalidInput("orchestrator: expected an object of Sprint spec fields")
        manifest = manifest_from_prd(definition, dash.namespace, {"suspend": True, **extra})
    except InvalidInput as exc:
        return JSONResponse({"detail": problems_detail(exc)}, status_code=422)
    body, created = await asyncio.to_thread(dash.kube.apply_sprint, dash.namespace, manifest)
    summary = {"name": body["metadata"]["name"], "sprint_id": board.sprint_id(body), "created": created}
    return JSONResponse(summary, status_code=201 if created else 200)


@router.get("/sprints", summary="Every sprint's overview")
async def list_sprints(dash: Dash) -> list[dict[str, Any]]:
    hub = dash.hub
    return [board.overview(s, hub.tasks_of(n)) for n, s in sorted(hub.sprints.items())]


@router.get("/sprints/{sprint_id}", summary="A sprint's status")
async def get_sprint(dash: Dash, sprint_id: str) -> dict[str, Any]:
    sprint = await find_sprint(dash, sprint_id)
    name = sprint["metadata"]["name"]
    return {
        "name": name,
        "sprint_id": board.sprint_id(sprint),
        "spec": sprint.get("spec") or {},
        "status": sprint.get("status") or {},
        "overview": board.overview(sprint, dash.hub.tasks_of(name)),
    }


@router.put("/sprints/{sprint_id}/start", status_code=202, dependencies=Authorized, summary="Start a sprint")
async def start_sprint(dash: Dash, sprint_id: str) -> dict[str, Any]:
    sprint = await find_sprint(dash, sprint_id)
    name = sprint["metadata"]["name"]
    await asyncio.to_thread(dash.kube.patch, SPRINTS, dash.namespace, name, {"spec": {"suspend": False}})
    await asyncio.to_thread(dash.kube.event, sprint, "StartRequested", "start requested on the dashboard")
    return {"name": name, "started": True}


@router.get("/tasks/{task_id}/status", summary="A task's status and card")
async def task_status(dash: Dash, task_id: str) -> dict[str, Any]:
    task = find_task(dash, task_id)
    return {
        "name": task["metadata"]["name"],
        "task_id": board.task_id(task),
        "sprint": task["spec"].get("sprintRef"),
        "status": task.get("status") or {},
        "card": board.page_card(task, now()),
    }


async def _request(dash: Dashboard, task_id: str, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    task = find_task(dash, task_id)
    column = board.column_of(task)
    verb = "retry"
    if column not in allowed:
        raise HTTPException(
            409, f"task {board.task_id(task)!r} is {column}: {verb} needs {' or '.join(allowed)}"
        )
    reason = "RetryRequested"
    message = f"{verb} of task {board.task_id(task)} requested on the dashboard"
    nonce = await asyncio.to_thread(annotate, dash.kube, TASKS, task, key, reason, message)
    return {"name": task["metadata"]["name"], "requested": verb, "nonce": nonce}


@router.post("/tasks/{task_id}/retry", status_code=202, dependencies=Authorized, summary="Retry a task")
async def retry_task(dash: Dash, task_id: str) -> dict[str, Any]:
    return await _request(dash, task_id, ANNOTATION_RETRY, (Column.FAILED, Column.REVIEW))


@router.get("/dashboard/{sprint_id}", summary="The PRD's board JSON")
async def dashboard_board(dash: Dash, sprint_id: str) -> dict[str, Any]:
    sprint = await find_sprint(dash, sprint_id)
    return board.project(sprint, dash.hub.tasks_of(sprint["metadata"]["name"]))


@router.get("/dashboard/{sprint_id}/page", summary="The board page's data (richer cards, overview)")
async def dashboard_page(dash: Dash, sprint_id: str) -> dict[str, Any]:
    sprint = await find_sprint(dash, sprint_id)
    return board.page(sprint, dash.hub.tasks_of(sprint["metadata"]["name"]), now())


@router.get("/dashboard/{sprint_id}/kaiban", summary="The KaibanJS team state")
async def dashboard_kaiban(dash: Dash, sprint_id: str) -> dict[str, Any]:
    sprint = await find_sprint(dash, sprint_id)
    return team_state(sprint, dash.hub.tasks_of(sprint["metadata"]["name"]))


@router.get("/reports/{sprint_id}", summary="Reporting data: velocity, tokens, gates, efficiency")
async def sprint_report(dash: Dash, sprint_id: str) -> dict[str, Any]:
    sprint = await find_sprint(dash, sprint_id)
    tasks = dash.hub.tasks_of(sprint["metadata"]["name"])
    return {"report": report.build(sprint, tasks, now()), "charts": charts(sprint, tasks)}
