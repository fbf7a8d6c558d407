"""Reads can need a token too (`sprintctl dashboard --read-token-file F`).

Without read tokens the board is read-only and open to whoever reaches it, as before. With them, every
read of sprint data — the REST API, the WebSockets, the board, report and Kaiban pages — needs one of
the read tokens (or an action token, which can do more):

- API clients send `Authorization: Bearer <token>`;
- browsers get a login page instead of a page with data; it posts the token to `POST /api/session`,
  which answers with an HttpOnly, SameSite=Strict cookie. The cookie then rides along on every fetch
  and on the WebSocket handshakes, whose Origin is checked as before. Actions still need the bearer
  header (never the cookie), so a cross-site request cannot act with the reader's cookie.

What stays open: /healthz, static assets, avatars, /docs and /openapi.json (no sprint data), the login
page and the session endpoint themselves.

One ASGI middleware guards HTTP and WebSocket alike (Starlette's HTTP middleware never sees a
WebSocket), so no route can forget the check.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

COOKIE = "sprintctl_session"
OPEN_PREFIXES = ("/static/", "/avatars/")
OPEN_PATHS = frozenset({"/healthz", "/docs", "/openapi.json", "/login", "/api/session"})
PAGE_PREFIXES = ("/board/", "/report/", "/kaiban/")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def valid(given: str, tokens: Iterable[str]) -> bool:
    return bool(given) and any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens)


def credential(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """(bearer token, session cookie) of a request; empty strings when absent."""
    bearer = cookie = ""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, given = value.decode("latin-1").partition(" ")
            bearer = given.strip() if scheme.lower() == "bearer" else ""
        elif name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                continue
            if COOKIE in jar:
                cookie = jar[COOKIE].value
    return bearer, cookie


def needs_token(path: str) -> bool:
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return False
    return path == "/" or path.startswith(("/api/", "/ws/", *PAGE_PREFIXES))


class ReadTokens:
    """ASGI middleware: refuse reads without a read (or action) token when read tokens are configured."""

    def __init__(self, app: ASGIApp, tokens: Callable[[], frozenset[str]]) -> None:
        self.app = app
        self.tokens = tokens  # read tokens | action tokens, looked up per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tokens = self.tokens()
        if scope["type"] not in ("http", "websocket") or not tokens or not needs_token(scope["path"]):
            await self.app(scope, receive, send)
            return
        bearer, cookie = credential(scope.get("headers") or [])
        if valid(bearer, tokens) or valid(cookie, tokens):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "a read token is required"})
            return
        await _refuse(scope, send)


async def _refuse(scope: Scope, send: Send) -> None:
    path = scope["path"]
    if path.startswith("/api/"):
        body = b'{"detail":"reading needs a token: Authorization: Bearer <token> "}'
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    else:  # a page: the login form, which comes back here once the cookie is set
        body = LOGIN_PAGE
        headers = [(b"content-type", b"text/html; charset=utf-8")]
    headers += [
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"default-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


LOGIN_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sprint Orchestrator: sign in</title>
<link rel="stylesheet" href="/static/board.css"></head>
<body><main class="login">
<h1>Sprint Orchestrator</h1>
<p>This dashboard needs a token to be read.</p>
<form id="login">
<label>Token <input id="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p id="login-error" role="alert"></p>
</main><script src="/static/login.js"></script></body></html>
"""
