"""Reads can need a token (`sprintctl dashboard --read-token-file`): the API, the WebSockets and the
pages refuse without one; a browser signs in once and gets an HttpOnly cookie; a read token cannot act.
A real dashboard process against the real kube-apiserver; the sign-in in real Chromium."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from _board import TOKEN, create_sprint_with_tasks, dashboard, sprint_body
from localcluster import LocalCluster
from sprint_orchestrator.kube import Kube

pytestmark = pytest.mark.cluster
READ = "read-token-abcdef0123456789"


@pytest.fixture
def base(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    create_sprint_with_tasks(Kube.from_kubeconfig(str(cluster.kubeconfig)), namespace, sprint_body("ra-1", 2))
    (tmp_path / "read").write_text(f"# readers\n{READ}\n")
    with dashboard(
        cluster.kubeconfig, namespace, tmp_path, "--read-token-file", str(tmp_path / "read")
    ) as url:
        yield url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_a_token_no_sprint_data_is_served(base: str) -> None:
    for path in ("/api/sprints", "/api/sprints/ra-1", "/api/dashboard/ra-1/page"):
        response = httpx.get(base + path)
        assert response.status_code == 401, path
        assert "ra-1" not in response.text and response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(base + "/api/sprints", headers=bearer("wrong")).status_code == 401
    page = httpx.get(base + "/board/ra-1")
    assert page.status_code == 401 and 'id="login"' in page.text and "ra-1" not in page.text
    for path in ("/healthz", "/static/board.css", "/static/login.js", "/openapi.json"):
        assert httpx.get(base + path).status_code == 200, path


def test_a_read_token_or_an_action_token_reads(base: str) -> None:
    for token in (READ, TOKEN):
        rows = httpx.get(base + "/api/sprints", headers=bearer(token)).json()
        assert [row["name"] for row in rows] == ["ra-1"]


def test_a_session_cookie_is_httponly_strict_and_opens_reads_but_never_actions(base: str) -> None:
    assert httpx.post(base + "/api/session", headers=bearer("wrong")).status_code == 401
    signed_in = httpx.post(base + "/api/session", headers=bearer(READ))
    assert signed_in.status_code == 204
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    with httpx.Client(base_url=base, cookies=signed_in.cookies) as browser:
        assert browser.get("/api/sprints").status_code == 200
        assert browser.get("/board/ra-1").status_code == 200
        acting = browser.put("/api/sprints/ra-1/start")
        assert acting.status_code in (401, 403)  # the cookie reads; acting needs the bearer header
        assert browser.delete("/api/session").status_code == 204
    read_only = httpx.put(base + "/api/sprints/ra-1/start", headers=bearer(READ))
    assert read_only.status_code == 401  # a read token cannot act


async def test_a_websocket_needs_the_token_too(base: str) -> None:
    url = base.replace("http", "ws") + "/ws/sprints/ra-1"
    with pytest.raises(websockets.InvalidStatus) as refused:  # closed before the handshake completes
        async with websockets.connect(url, origin=websockets.Origin(base)):
            pass
    assert refused.value.response.status_code == 403
    signed_in = await asyncio.to_thread(httpx.post, base + "/api/session", headers=bearer(READ))
    cookie = f"sprintctl_session={signed_in.cookies['sprintctl_session']}"
    async with websockets.connect(
        url, origin=websockets.Origin(base), additional_headers={"Cookie": cookie}
    ) as socket:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 30))
        assert message["type"] == "board"


@pytest.mark.browser
def test_a_browser_signs_in_once_and_sees_the_board(base: str) -> None:
    from playwright.sync_api import sync_playwright

    from test_browser import ARGS, CHROMIUM

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = chromium.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{base}/board/ra-1")
            page.fill("#token", "wrong")
            page.click("button[type=submit]")
            page.wait_for_selector("#login-error:has-text('not valid')")
            page.fill("#token", READ)
            page.click("button[type=submit]")
            page.wait_for_selector('.card[data-task="t0"]')
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        finally:
            chromium.close()
