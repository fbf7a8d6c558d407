"""A warm Pod's claim on the transfer endpoint (transfer.py, podpool.py), over real HTTP: held until the
operator assigns a run, answered once with the command, and nothing of the grant served before it."""

from __future__ import annotations

import io
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sprint_orchestrator.runtime import podnet, podpool
from sprint_orchestrator.runtime.transfer import TransferServer


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    endpoint = TransferServer("127.0.0.1")
    endpoint.claim_poll_s = 0.5
    yield endpoint
    endpoint.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_a_claim_is_held_then_answered_once_with_the_command_and_the_workspace_follows(
    server: TransferServer, tmp_path: Path
) -> None:
    placeholder, work = tmp_path / "empty", tmp_path / "work"
    placeholder.mkdir()
    work.mkdir()
    (work / "f.txt").write_text("judged\n")
    token = server.pool_grant(placeholder)
    url = server.url(token)
    assert _get(f"{url}/workspace") == (404, b"")  # nothing before the claim: not even the placeholder
    assert not server.waiting(token) and server.last_claim(token) is None  # not up yet

    began = time.monotonic()
    assert _get(f"{url}/claim") == (204, b"")  # no work within the poll: ask again
    assert time.monotonic() - began >= 0.4
    last = server.last_claim(token)
    assert last is not None and began <= last  # it asked: up, or lost if it stops asking (podpool)

    answers: list[tuple[int, bytes]] = []
    poll = threading.Thread(target=lambda: answers.append(_get(f"{url}/claim")))
    server.claim_poll_s = 10
    poll.start()
    deadline = time.monotonic() + 5
    while not server.waiting(token) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.waiting(token)  # the Pod waits now: the pool may hand it out
    assert server.assign(token, work, "test -s f.txt && echo ok") is True
    poll.join(timeout=5)
    assert answers == [(200, b"test -s f.txt && echo ok")]
    assert not server.waiting(token)
    assert server.assign(token, work, "true") is False  # one run per warm Pod
    assert _get(f"{url}/claim") == (404, b"")  # and one claim

    status, body = _get(f"{url}/workspace")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("f.txt").read() == b"judged\n"  # type: ignore[union-attr]
    assert _get(f"{url}/workspace") == (404, b"")  # each URL once
    grant = server.grant_of(token)
    assert grant is not None and grant.fetched


def test_an_assignment_no_pod_takes_is_given_up(server: TransferServer, tmp_path: Path) -> None:
    token = server.pool_grant(tmp_path)
    began = time.monotonic()
    assert server.assign(token, tmp_path, "true", ack_s=0.3) is False  # no wrapper is waiting
    assert time.monotonic() - began < 2
    server.revoke(token)
    assert not server.waiting(token) and server.assign(token, tmp_path, "true") is False
    assert _get(f"{server.url(token)}/claim") == (404, b"")


def test_only_a_gates_shell_command_of_a_tasks_sprint_goes_to_a_warm_pod() -> None:
    task = {"metadata": {"namespace": "ns", "ownerReferences": [
        {"kind": "Sprint", "name": "s", "uid": "u1"}]}, "spec": {"sprintRef": "s"}}  # fmt: skip
    limits = podpool.Limits(cpus=0.5)
    key = podpool.key_for(task, "img", limits, 60, podpool.Scheduling(node_selector={"a": "b"}))
    assert key is not None and key.sprint == "ns/s"
    same = podpool.key_for(task, "img", limits, 60, podpool.Scheduling(node_selector={"a": "b"}))
    assert key == same and hash(key) == hash(same)
    assert key != podpool.key_for(task, "img", limits, 61, podpool.Scheduling(node_selector={"a": "b"}))
    assert podpool.key_for(None, "img", limits, 60, podpool.Scheduling()) is None  # an integration check
    assert podpool.shell_command(["/bin/sh", "-c", "make test"]) == "make test"
    assert podpool.shell_command(["make", "test"]) is None
    assert podnet.sprint_owner(task, "ns")[0]["uid"] == "u1" and podnet.sprint_owner(task, "other") == []
