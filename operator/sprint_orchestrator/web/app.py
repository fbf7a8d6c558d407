"""The FastAPI application: REST API (OpenAPI at /docs, /openapi.json), WebSocket push, pages.

`create_app(dash, listeners)` wires the routers; its lifespan starts the ONE shared watch (a
`Watcher` thread per kind feeding `dash.hub`) and registers the transition listeners (notifications,
Kaiban mirroring). Pages are read-only and shareable: /board/{id}, /report/{id}, /kaiban/{id};
actions from them need the bearer token the user types in once (kept in the browser's localStorage).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from .. import __version__
from ..errors import InvalidInput, OrchestratorError
from ..kube import KubeError
from . import api, files, live, review
from .avatars import avatar_svg
from .context import Dashboard, problems_detail
from .headers import security_headers
from .hub import Listener
from .readauth import COOKIE, ReadTokens, credential, valid
from .watcher import Watcher

STATIC = Path(__file__).parent / "static"
PAGES = {"board": "board.html", "report": "report.html", "kaiban": "kaiban.html"}


def create_app(dash: Dashboard, listeners: Sequence[Listener] = (), watch: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dash.hub.listeners.extend(listeners)
        watcher = Watcher(dash.kube, dash.hub, asyncio.get_running_loop()) if watch else None
        if watcher:
            watcher.start()
        try:
            yield
        finally:
            if watcher:
                watcher.stop()

    app = FastAPI(
        title="Sprint Orchestrator dashboard",
        version=__version__,
        description="The PRD's REST API, the Kaiban board data and live updates of Sprints and Tasks.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load Swagger UI from a CDN: ours come with the Python package
        redoc_url=None,
    )
    app.middleware("http")(security_headers)
    app.add_middleware(
        ReadTokens, tokens=lambda: (dash.read_tokens | dash.tokens) if dash.read_tokens else frozenset()
    )
    app.state.dashboard = dash
    app.include_router(api.router)
    app.include_router(files.router)
    app.include_router(review.router)
    app.include_router(live.router)
    _errors(app)
    _pages(app)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": problems_detail(exc)}, status_code=422)

    @app.exception_handler(KubeError)
    async def kube(_: Request, exc: KubeError) -> JSONResponse:
        status = exc.status if exc.status in (404, 409, 422) else 502
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(OrchestratorError)
    async def other(_: Request, exc: OrchestratorError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)


def _pages(app: FastAPI) -> None:
    app.mount("/static/swagger", StaticFiles(directory=str(swagger_ui_path)), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post("/api/session", status_code=204, summary="Sign a browser in with a read or action token")
    async def open_session(request: Request) -> Response:
        dash: Dashboard = request.app.state.dashboard
        bearer, _ = credential(request.scope.get("headers") or [])
        if not dash.read_tokens:
            return Response(status_code=204)  # reads are open: nothing to remember
        if not valid(bearer, dash.read_tokens | dash.tokens):
            return JSONResponse(
                {"detail": "a valid token is required: Authorization: Bearer <token>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        response = Response(status_code=204)
        response.set_cookie(
            COOKIE, bearer, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
        )
        return response

    @app.delete("/api/session", status_code=204, summary="Sign a browser out")
    async def close_session() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        synced = request.app.state.dashboard.hub.synced.is_set()
        return JSONResponse({"synced": synced}, status_code=200 if synced else 503)

    @app.get("/avatars/{name}", include_in_schema=False)
    async def avatar(name: str) -> Response:
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(avatar_svg(name), media_type="image/svg+xml", headers=headers)

    for prefix, page in PAGES.items():
        app.add_api_route(f"/{prefix}/{{sprint_id}}", _page(page), include_in_schema=False)


def _page(name: str) -> Callable[[str], Awaitable[FileResponse]]:
    async def serve(sprint_id: str) -> FileResponse:
        return FileResponse(STATIC / name)

    return serve
