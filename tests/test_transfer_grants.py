"""Transfer grants survive an operator restart (kept on disk by their token's digest, never the token);
image references are pinned by digest; a sprint image is built only when something must be baked in."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import tarfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _e2e import wait_for
from sprint_orchestrator.errors import ImageBuildFailed, RuntimeUnavailable
from sprint_orchestrator.runtime import podimages, registry
from sprint_orchestrator.runtime.transfer import GrantStore, TransferServer, key_of, split_address


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _put(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Length": str(len(body))})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_grant_made_before_a_restart_takes_its_pods_upload_after_it(tmp_path: Path) -> None:
    ws, artifacts = tmp_path / "ws", tmp_path / "artifacts"
    ws.mkdir()
    (ws / "old.txt").write_text("before\n")
    store = GrantStore(tmp_path / "transfer")
    first = TransferServer("127.0.0.1", store=store)
    token = first.grant(ws, {"workspace": ws, "artifacts": artifacts}, pod="so-s-t-1")
    oneshot = first.grant(ws, {})  # a gate's grant: useless once its operator is gone
    url, port = first.url(token), first.port
    with (
        urllib.request.urlopen(f"{url}/workspace", timeout=30) as response,
        tarfile.open(fileobj=io.BytesIO(response.read())) as tar,
    ):
        assert tar.getnames()
    first.close()  # the operator dies with the Pod still running
    on_disk = "".join(p.read_text() for p in (tmp_path / "transfer").glob("*.json"))
    assert (
        token not in on_disk
        and oneshot not in on_disk
        and key_of(token) in {p.stem for p in (tmp_path / "transfer").glob("*.json")}
    )

    second = TransferServer("127.0.0.1", port, store=GrantStore(tmp_path / "transfer"))
    try:
        assert second.pods() == {"so-s-t-1": key_of(token)}
        assert second.grant_of(oneshot) is None
        assert _put(f"{url}/result/workspace", _tar({"new.txt": b"after\n"})) == 200
        assert _put(f"{url}/result/workspace", _tar({"again.txt": b"x"})) == 404  # once only
        with pytest.raises(urllib.error.HTTPError) as served:
            urllib.request.urlopen(f"{url}/workspace", timeout=30)  # served before the restart
        served.value.close()
        grant = second.grant_by_key(key_of(token))
        assert grant is not None and grant.received["workspace"].startswith("ok")
        assert sorted(p.name for p in ws.iterdir()) == ["new.txt"]
        saved = json.loads((tmp_path / "transfer" / f"{key_of(token)}.json").read_text())
        assert saved["received"]["workspace"].startswith("ok") and saved["served"] is True
        assert grant.fetched and saved["sent"] == ["workspace"]  # it went out whole before the restart
        second.revoke_key(key_of(token))
        assert not list((tmp_path / "transfer").glob("*.json"))
    finally:
        second.close()


def _serving() -> bool:
    return any("process_request_thread" in t.name for t in threading.enumerate())


def test_the_last_upload_reports_the_exit_once_settled_and_a_malformed_report_is_refused(
    tmp_path: Path,
) -> None:
    ws, artifacts = tmp_path / "ws", tmp_path / "artifacts"
    ws.mkdir()
    store = GrantStore(tmp_path / "transfer")
    server = TransferServer("127.0.0.1", store=store)
    announced: list[int | None] = []
    server.on_settled = lambda grant: announced.append(grant.reported_exit)
    token = server.grant(ws, {"workspace": ws, "artifacts": artifacts}, pod="so-s-t-1")
    url, grant = server.url(token), server.grant_of(token)
    assert grant is not None
    try:
        for query in ("?exit=256", "?exit=-1", "?exit=0x1", "?exit=", "?code=0", "?exit=0&exit=1"):
            assert _put(f"{url}/result/artifacts{query}", _tar({"a.txt": b"a"})) == 404, query
        assert grant.received == {} and announced == []  # nothing was taken
        assert _put(f"{url}/result/artifacts?exit=0", _tar({"a.txt": b"a"})) == 200
        assert announced == [0] and not grant.reported_success  # the workspace has not come back yet
        assert _put(f"{url}/result/workspace", _tar({"w.txt": b"w"})) == 200
        assert grant.reported_success
        assert _put(f"{url}/result/artifacts?exit=0", _tar({})) == 404  # once
    finally:
        server.close()
    restored = TransferServer("127.0.0.1", store=store)
    try:
        again = restored.grant_of(token)
        assert again is not None and again.reported_exit == 0 and again.reported_success
    finally:
        restored.close()


def test_a_refused_last_upload_still_settles_and_a_nonzero_exit_is_no_reported_success(
    tmp_path: Path,
) -> None:
    ws, artifacts = tmp_path / "ws", tmp_path / "artifacts"
    ws.mkdir()
    server = TransferServer("127.0.0.1")
    token = server.grant(ws, {"workspace": ws, "artifacts": artifacts}, pod="so-s-t-2")
    other = server.grant(ws, {"workspace": ws, "artifacts": artifacts}, pod="so-s-t-3")
    try:
        assert _put(f"{server.url(token)}/result/workspace", _tar({"w.txt": b"w"})) == 200
        assert _put(f"{server.url(token)}/result/artifacts?exit=0", _tar({"../out": b"x"})) == 422
        refused = server.grant_of(token)
        assert refused is not None and refused.reported_success and refused.refused  # over; reported refused
        assert _put(f"{server.url(other)}/result/workspace", _tar({"w.txt": b"w"})) == 200
        assert _put(f"{server.url(other)}/result/artifacts?exit=3", _tar({})) == 200
        failed = server.grant_of(other)
        assert failed is not None and failed.reported_exit == 3 and not failed.reported_success
    finally:
        server.close()


def test_a_download_the_pod_broke_off_is_not_counted_as_fetched(tmp_path: Path) -> None:
    """The verdict "the Pod ended without its workspace" rests on this fact of the operator's own
    endpoint, never on what the Pod (whose code a gate judges) exits with or prints."""
    ws, team = tmp_path / "ws", tmp_path / "team"
    ws.mkdir()
    team.mkdir()
    (ws / "big.bin").write_bytes(os.urandom(8 << 20))  # more than the sockets' buffers hold
    (team / "run.py").write_text("print('team')\n")
    server = TransferServer("127.0.0.1", store=GrantStore(tmp_path / "transfer"))
    try:
        token = server.grant(ws, {}, mounts=[team])
        grant = server.grant_of(token)
        assert grant is not None and not grant.fetched
        host, port = server.url(token).split("//")[1].split("/")[0].split(":")
        path = "/" + server.url(token).split("//")[1].split("/", 1)[1]
        with socket.create_connection((host, int(port)), timeout=30) as cut:
            cut.sendall(f"GET {path}/workspace HTTP/1.0\r\n\r\n".encode())
            assert cut.recv(4096).startswith(b"HTTP/1.0 200")
            cut.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not close
        wait_for(lambda: not _serving(), 30, "the endpoint's handler to end on the broken download")
        assert not grant.fetched and grant.served  # sent in part, and it answers only once
        with urllib.request.urlopen(f"{server.url(token)}/mount/0", timeout=30) as response:
            response.read()
        assert grant.sent == {"mount/0"} and not grant.fetched  # the workspace is still missing
    finally:
        server.close()


def test_a_digest_presented_as_a_token_opens_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    server = TransferServer("127.0.0.1", store=GrantStore(tmp_path / "transfer"))
    try:
        token = server.grant(ws, {"workspace": ws}, pod="p")
        base = server.url(token).rsplit("/", 1)[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/{key_of(token)}/workspace", timeout=30)
        assert refused.value.code == 404
        refused.value.close()
    finally:
        server.close()


def test_the_endpoint_listens_on_one_address_and_is_advertised_under_another(tmp_path: Path) -> None:
    assert split_address("10.0.0.5:8081") == ("10.0.0.5", 8081)
    assert split_address("so-transfer.ns.svc") == ("so-transfer.ns.svc", None)
    server = TransferServer("127.0.0.1", 0, "so-transfer.so-system.svc:8081")
    try:
        assert server.url("tok") == "http://so-transfer.so-system.svc:8081/t/tok"
    finally:
        server.close()
    plain = TransferServer("127.0.0.1")
    try:
        assert plain.url("tok") == f"http://127.0.0.1:{plain.port}/t/tok"
    finally:
        plain.close()


@pytest.mark.parametrize(
    ("ref", "host", "name", "tag"),
    [
        ("10.250.7.254:5000/so/operator:ab12", "10.250.7.254:5000", "so/operator", "ab12"),
        ("registry.example/team/agent", "registry.example", "team/agent", "latest"),
        ("python:3.12-slim", "docker.io", "library/python", "3.12-slim"),
        ("localhost/sprint-orchestrator/base:bookworm", "localhost", "sprint-orchestrator/base", "bookworm"),
    ],
)  # fmt: skip
def test_image_references_are_parsed_like_the_container_runtimes_do(
    ref: str, host: str, name: str, tag: str
) -> None:
    parsed = registry.parse(ref)
    assert (parsed.host, parsed.name, parsed.tag, parsed.digest) == (host, name, tag, None)


def test_a_reference_with_a_digest_is_pinned_as_it_is_and_bad_ones_name_the_field() -> None:
    digest = "sha256:" + "a" * 64
    assert registry.pin(f"reg.example:5000/x/y:tag@{digest}") == f"reg.example:5000/x/y@{digest}"
    for bad in ("reg.example/x@sha256:zz", "reg.example/UPPER:tag", "reg.example/x:tag;rm"):
        with pytest.raises(ImageBuildFailed, match=r"container\.baseImage"):
            registry.pin(bad)


@pytest.fixture
def plain_http_registry() -> Iterator[str]:
    """A registry on plain HTTP answering a manifest HEAD as the distribution API does."""

    class Manifests(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            found = self.path == "/v2/team/agent/manifests/1"
            self.send_response(200 if found else 404)
            if found:
                self.send_header("Docker-Content-Digest", "sha256:" + "b" * 64)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Manifests)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_tag_is_pinned_by_the_registrys_digest_and_a_plain_http_registry_is_named_as_such(
    plain_http_registry: str,
) -> None:
    host = plain_http_registry
    assert registry.pin(f"{host}/team/agent:1", [host]) == f"{host}/team/agent@sha256:{'b' * 64}"
    with pytest.raises(ImageBuildFailed, match=r"container\.baseImage: .* is not in its registry"):
        registry.pin(f"{host}/team/agent:2", [host])
    with pytest.raises(ImageBuildFailed, match=r"containers\.registry_plain_http: true"):
        registry.pin(f"{host}/team/agent:1")


def test_only_a_local_base_image_needs_podman_and_without_it_the_error_says_what_to_do() -> None:
    assert not podimages.needs_build("reg.example/team/base:1", [], {})
    assert podimages.needs_build("reg.example/team/base:1", ["apt:jq"], {})
    assert podimages.needs_build("reg.example/team/base:1", [], {"LANG": "C.UTF-8"})
    assert podimages.needs_build("localhost/sprint-orchestrator/base:bookworm", [], {})

    def no_podman() -> None:
        raise RuntimeUnavailable("no Podman socket")

    class InCluster:  # what sprint_image reads of a PodsRuntime before it builds
        registry, plain_http = "reg.example", ()

    local = "localhost/sprint-orchestrator/base:bookworm"
    with pytest.raises(ImageBuildFailed, match="push it to a registry") as failed:
        podimages.sprint_image(InCluster(), local, ["apt:jq"], {}, {}, no_podman)  # type: ignore[arg-type]
    assert "container.baseImage" in str(failed.value) and "no Podman socket" in str(failed.value)


def test_task_pods_reach_the_proxy_on_the_advertised_host_and_a_restart_listens_on_the_same_port(
    tmp_path: Path,
) -> None:
    """Behind a Service the Pods' base URL names the Service, on the configured port; on a host with any
    free port, the next operator listens where the running Pods' URLs point."""
    from typing import Any, cast

    from sprint_orchestrator.runtime.pods import PodsRuntime

    kube = cast(Any, None)  # the constructor does not talk to the API server
    behind = PodsRuntime(kube, "ns", "so-transfer.so.svc:18081", tmp_path / "a", listen="127.0.0.1:0",
                         proxy_port=free_port())  # fmt: skip
    try:
        port = behind.proxy_socket.getsockname()[1]
        assert behind.proxy_url == f"http://so-transfer.so.svc:{port}"
    finally:
        behind.transfer.close()
        behind.proxy_socket.close()
    first = PodsRuntime(kube, "ns", "127.0.0.1", tmp_path / "b")
    port = first.proxy_socket.getsockname()[1]
    assert first.proxy_url == f"http://127.0.0.1:{port}"
    first.transfer.close()
    first.proxy_socket.close()
    second = PodsRuntime(kube, "ns", "127.0.0.1", tmp_path / "b")
    try:
        assert second.proxy_socket.getsockname()[1] == port
    finally:
        second.transfer.close()
        second.proxy_socket.close()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
