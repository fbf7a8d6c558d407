"""WebSocket push: every client of a sprint gets the board when the shared watch sees a change."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from _board import create_sprint_with_tasks, dashboard, set_status, sprint_body
from localcluster import LocalCluster
from sprint_orchestrator.kube import Kube

pytestmark = pytest.mark.cluster


async def next_board(socket: Any, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "board" and predicate(message):
                return dict(message)


def column(message: dict[str, Any], tid: str) -> str:
    return next(c["column"] for c in message["board"]["cards"] if c["task_id"] == tid)


async def test_two_clients_get_the_same_live_update(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("ws-1", tasks=2))
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        url = base.replace("http", "ws") + "/ws/sprints/ws-1"
        async with websockets.connect(url) as one, websockets.connect(url) as two:
            first = await next_board(one, lambda m: True)
            await next_board(two, lambda m: True)
            assert column(first, "t0") == "ready"
            await asyncio.to_thread(set_status, kube, namespace, "ws-1", "t0", {"column": "completed"})
            for socket in (one, two):
                message = await next_board(socket, lambda m: column(m, "t0") == "completed")
                assert "t0" in message["changed"]
                assert message["kaiban"]["tasks"][0]["status"] == "DONE"
                assert message["board"]["overview"]["completed"] == 1


async def test_unknown_sprint_closes_the_socket_with_4404(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        async with websockets.connect(base.replace("http", "ws") + "/ws/sprints/none") as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


async def test_task_log_is_streamed_as_it_grows(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("logs-1", tasks=1))
    log = tmp_path / "t0.log"
    log.write_text("start\n")
    await asyncio.to_thread(set_status, kube, namespace, "logs-1", "t0", {"logPath": str(log)})
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        async with websockets.connect(base.replace("http", "ws") + "/ws/tasks/logs-1:t0/logs") as socket:
            async with asyncio.timeout(20):
                assert await socket.recv() == "start\n"
                with log.open("a") as out:
                    out.write("more\n")
                assert await socket.recv() == "more\n"


async def test_a_websocket_from_another_site_is_refused_one_from_the_board_is_not(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    create_sprint_with_tasks(kube, namespace, sprint_body("ws-origin", tasks=1))
    with dashboard(cluster.kubeconfig, namespace, tmp_path) as base:
        url = base.replace("http", "ws") + "/ws/sprints/ws-origin"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, origin=websockets.Origin("http://evil.example")):
                pass
        assert refused.value.response.status_code == 403
        async with websockets.connect(url, origin=websockets.Origin(base)) as socket:
            assert (await next_board(socket, lambda m: True))["type"] == "board"
