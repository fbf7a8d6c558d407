"""Security headers on every response of the dashboard (DESIGN.md §9: nothing an agent wrote runs).

Pages get a strict Content-Security-Policy: scripts only from this origin (no inline script, no CDN),
no plugins, no framing. Artifacts, which an agent wrote, are downloads that never render here
(`Content-Disposition: attachment`, `nosniff`, and a sandboxing CSP should a browser render anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # style attributes (charts, the Kaiban Board's React styles)
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
ARTIFACT_CSP = "default-src 'none'; sandbox"


def is_artifact(path: str) -> bool:
    return path.startswith("/api/tasks/") and "/artifacts/" in path


async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if is_artifact(request.url.path):
        response.headers["Content-Security-Policy"] = ARTIFACT_CSP
        name = request.url.path.rsplit("/", 1)[-1].replace('"', "")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    else:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response
