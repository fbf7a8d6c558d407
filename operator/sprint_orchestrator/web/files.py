"""A task's log, RESULTS.md and artifacts, read from the paths in its status.

Only files under the dashboard's roots (the operator's state directory) are served, whatever a
status says, and artifact paths are resolved inside the task's artifacts directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, PlainTextResponse

from ..status import parse_task_status
from .context import Dashboard, dashboard, find_task
from .hub import Body

router = APIRouter(prefix="/api")
Dash = Annotated[Dashboard, Depends(dashboard)]
LOG_CHUNK = 64 * 1024


def _inside(dash: Dashboard, path: Path) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in dash.roots)


def log_file(dash: Dashboard, task: Body) -> Path | None:
    raw = parse_task_status(task.get("status")).log_path
    path = Path(raw) if raw else None
    return path if path is not None and path.is_file() and _inside(dash, path) else None


def artifacts_dir(dash: Dashboard, task: Body) -> Path | None:
    raw = parse_task_status(task.get("status")).artifacts_path
    path = Path(raw) if raw else None
    return path if path is not None and path.is_dir() and _inside(dash, path) else None


def read_from(path: Path, offset: int, limit: int) -> tuple[str, int]:
    """Up to `limit` bytes of `path` from `offset` (decoded leniently) and the next offset."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read(limit)
    return data.decode("utf-8", errors="replace"), offset + len(data)


def listing(root: Path) -> list[dict[str, Any]]:
    return [
        {"path": str(p.relative_to(root)), "size": p.stat().st_size}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


def artifact(dash: Dashboard, task: Body, rel: str) -> Path:
    root = artifacts_dir(dash, task)
    if root is None:
        raise HTTPException(404, f"task {task['metadata']['name']!r} has no artifacts yet")
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise HTTPException(404, f"artifact {rel!r} not found in {task['metadata']['name']!r}")
    return path


async def serve_log(dash: Dashboard, task_id: str, offset: int) -> PlainTextResponse:
    task = find_task(dash, task_id)
    path = log_file(dash, task)
    if path is None:
        raise HTTPException(404, f"task {task_id!r} has no log yet")
    text, end = await asyncio.to_thread(read_from, path, max(offset, 0), LOG_CHUNK * 16)
    return PlainTextResponse(text, headers={"X-Next-Offset": str(end)})


async def serve_artifacts(dash: Dashboard, task_id: str) -> dict[str, Any]:
    task = find_task(dash, task_id)
    root = artifacts_dir(dash, task)
    files = await asyncio.to_thread(listing, root) if root else []
    summary = parse_task_status(task.get("status")).results
    return {"files": files, "results": summary.summary if summary else None}


def serve_artifact(dash: Dashboard, task_id: str, rel: str) -> FileResponse:
    path = artifact(dash, find_task(dash, task_id), rel)
    text = path.suffix in (".md", ".txt", ".log", ".json")
    return FileResponse(path, media_type="text/plain; charset=utf-8" if text else None)


@router.get("/tasks/{task_id}/logs", response_class=PlainTextResponse, summary="A task's log from an offset")
async def get_log(dash: Dash, task_id: str, offset: int = 0) -> PlainTextResponse:
    return await serve_log(dash, task_id, offset)


@router.get("/tasks/{task_id}/artifacts", summary="A task's artifacts and RESULTS.md summary")
async def get_artifacts(dash: Dash, task_id: str) -> dict[str, Any]:
    return await serve_artifacts(dash, task_id)


@router.get("/tasks/{task_id}/artifacts/{rel:path}", summary="One artifact file")
async def get_artifact(dash: Dash, task_id: str, rel: str) -> FileResponse:
    return serve_artifact(dash, task_id, rel)
