"""A sprint image built inside the cluster, no Podman involved: a build Pod installs the sprint's Debian
packages unprivileged, the operator makes its upload a layer, assembles the image in the cluster's
registry, and task Pods run it by digest (real nodes, the real registry, the Debian archive)."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import hashlib
import threading
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from _node import build_busybox_image, pods_runtime, two_nodes
from _podman import build_base_image, host_debian_sources
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.errors import ImageBuildFailed
from sprint_orchestrator.kube import KubeError
from sprint_orchestrator.runtime import ImageResult, Limits, images, podimages, registry
from sprint_orchestrator.runtime.pods import PodsRuntime

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(1200)]

LIMITS = Limits(cpus=0.5, memory_bytes=256 << 20)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("build")) as local:
        yield local


@pytest.fixture(scope="module")
def base(nodes: LocalCluster) -> str:
    """The Debian base image, in the cluster's registry (by tag, as a user would name it)."""
    return push_image(build_base_image(), nodes.registry, f"build-test/base:{uuid.uuid4().hex[:8]}")


class DebianRelay(BaseHTTPRequestHandler):
    """The local cluster's nodes have no route out (hack/localnet.py leaves the host's forwarding off), as
    many clusters reach their package archive only through a mirror or a caching proxy: this one relays
    GETs, on the host's node-bridge address, to the Debian archive this machine's apt uses."""

    upstream = ""

    def do_GET(self) -> None:
        request = urllib.request.Request(self.upstream + self.path.removeprefix("/debian"))
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                body, code = answer.read(), answer.status
                kind = answer.headers.get("Content-Type") or "application/octet-stream"
        except urllib.error.HTTPError as exc:
            body, code, kind = b"", exc.code, "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def debian(nodes: LocalCluster) -> Iterator[str]:
    sources = host_debian_sources()
    if not sources:
        pytest.skip("this machine's apt names no Debian archive")
    node_set = nodes.node_set()
    assert node_set is not None
    handler = type("Relay", (DebianRelay,), {"upstream": sources[0].rstrip("/")})
    with _serving(node_set.slot.host_ip, handler) as address:
        yield f"http://{address}/debian"


@contextlib.contextmanager
def _serving(host: str, handler: Any) -> Iterator[str]:
    """An HTTP server on the host's node-bridge address (the Pods reach it); its host:port."""
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def runtime(
    nodes: LocalCluster, debian: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodsRuntime]:
    with pods_runtime(nodes, tmp_path_factory.mktemp("state"), "build", registry_plain_http=True) as pods:
        pods.package_sources = images.PackageSources(apt=(debian,))
        pods._podman = _NoPodman()  # a build that reached for Podman would fail loudly
        yield pods


class _NoPodman:
    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the in-cluster build used Podman ({name})")

    def close(self) -> None:
        pass


def _build(runtime: PodsRuntime, base: str, deps: list[str], env: dict[str, str]) -> ImageResult:
    try:
        return runtime.ensure_sprint_image(base, deps, env, {"purpose": "test"})
    except ImageBuildFailed as exc:
        pytest.fail(f"{exc}\n{exc.log_tail}")


def _ran(runtime: PodsRuntime, image: str, script: str, tmp_path: Path) -> str:
    ws = tmp_path / f"ws-{uuid.uuid4().hex[:6]}"
    ws.mkdir()
    result = runtime.run_oneshot(image, ["/bin/sh", "-c", script], ws, 180, LIMITS)
    assert result.exit_code == 0, result.log_tail
    return result.log_tail


def test_a_sprint_s_packages_are_installed_by_a_build_pod_and_its_image_runs_in_task_pods(
    runtime: PodsRuntime, base: str, nodes: LocalCluster, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    built = _build(runtime, base, ["apt:jq"], {"SPRINT_MARK": mark})
    assert built.built and built.tag.startswith(f"{nodes.registry}/sprint-orchestrator/sprint@sha256:")
    out = _ran(
        runtime, built.tag, "jq -n 1+1; echo mark=$SPRINT_MARK; dpkg -s jq | grep ^Status; pwd", tmp_path
    )
    assert out.split()[:2] == ["2", f"mark={mark}"], out
    assert "Status: install ok installed" in out and "/workspace" in out
    again = runtime.ensure_sprint_image(base, ["apt:jq"], {"SPRINT_MARK": mark}, {})
    assert again == ImageResult(built.tag, built=False)  # content-addressed: never built twice
    pods = nodes.kubectl("-n", runtime.namespace, "get", "pods,networkpolicies", "-o", "name")
    assert "oneshot" not in pods  # the build Pod and its policy are gone


def test_an_environment_only_image_is_assembled_in_the_registry_without_any_pod(
    runtime: PodsRuntime, base: str, nodes: LocalCluster, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    before = runtime.transfer.pods()
    built = _build(runtime, base, [], {"SPRINT_MARK": mark, "LANG": "C.UTF-8"})
    assert built.built and runtime.transfer.pods() == before
    parsed = registry.parse(built.tag)
    session = registry.Session(parsed.host, [parsed.host])
    manifest = session.manifest(parsed.name, str(parsed.digest)).document
    base_ref = registry.parse(registry.pin(base, [parsed.host]))
    base_layers = session.manifest(base_ref.name, str(base_ref.digest)).document["layers"]
    assert manifest["layers"] == base_layers  # the base's layers, not one more
    out = _ran(runtime, built.tag, "echo mark=$SPRINT_MARK lang=$LANG", tmp_path)
    assert f"mark={mark} lang=C.UTF-8" in out


def test_a_package_that_does_not_exist_fails_the_build_with_apt_s_own_words(
    runtime: PodsRuntime, base: str
) -> None:
    with pytest.raises(ImageBuildFailed, match="build Pod") as failed:
        runtime.ensure_sprint_image(base, ["apt:no-such-package-sprint-orchestrator"], {}, {})
    assert "no-such-package-sprint-orchestrator" in str(failed.value)
    assert "Unable to locate package" in failed.value.log_tail, failed.value.log_tail


def test_packages_without_a_configured_source_are_refused_before_any_pod(
    runtime: PodsRuntime, base: str
) -> None:
    sources = runtime.package_sources
    runtime.package_sources = images.PackageSources()
    try:
        with pytest.raises(ImageBuildFailed, match=r"containers.package_sources.apt"):
            podimages.build_in_cluster(runtime, base, ["apt:jq"], {}, {})
    finally:
        runtime.package_sources = sources


def _wheel(root: Path, name: str, version: str, source: str) -> Path:
    """A pure-Python wheel written by hand (PEP 427): the package, METADATA, WHEEL and RECORD."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    files[f"{name}-{version}.dist-info/RECORD"] = (record + f"{name}-{version}.dist-info/RECORD,,\n").encode()
    wheel = root / "files" / f"{name}-{version}-py3-none-any.whl"
    wheel.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture
def pip_index(nodes: LocalCluster, tmp_path: Path) -> Iterator[str]:
    """A PEP 503 simple index on the host's node-bridge address, serving one hand-made wheel."""
    node_set = nodes.node_set()
    assert node_set is not None
    root = tmp_path / "index"
    wheel = _wheel(root, "sotool", "1.0", "VALUE = 'from the pip index'\n")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    page = root / "simple" / "sotool" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    with _serving(node_set.slot.host_ip, functools.partial(QuietFiles, directory=str(root))) as address:
        yield f"http://{address}/simple"


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_pip_packages_come_from_the_configured_index_with_pip_itself_from_the_debian_archive(
    runtime: PodsRuntime, base: str, pip_index: str, tmp_path: Path
) -> None:
    """The base image has no pip: the build Pod gets Debian's python3-pip from the apt source (unpacked,
    not installed) and runs it against the index; the Pod reaches both sources and nothing else."""
    sources = runtime.package_sources
    runtime.package_sources = images.PackageSources(apt=sources.apt, pip=(pip_index,))
    try:
        built = _build(runtime, base, ["pip:sotool==1.0"], {})
    finally:
        runtime.package_sources = sources
    out = _ran(
        runtime, built.tag, "python3 -c 'import sotool; print(sotool.VALUE, sotool.__file__)'", tmp_path
    )
    assert "from the pip index /usr/local/lib/python3" in out, out


def test_packages_on_a_base_image_without_apt_fail_saying_what_the_image_lacks(
    runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    busybox = push_image(build_busybox_image(), nodes.registry, f"build-test/busybox:{uuid.uuid4().hex[:8]}")
    with pytest.raises(ImageBuildFailed, match="build Pod") as failed:
        runtime.ensure_sprint_image(busybox, ["apt:jq"], {}, {})
    said = "the base image has no apt-get: apt: packages need a Debian-based base image"
    assert said in failed.value.log_tail, failed.value.log_tail


def test_a_build_pod_the_cluster_did_not_take_for_now_runs_again_and_three_such_runs_fail_the_build(
    runtime: PodsRuntime, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server busy for a moment (429, what the Kube adapter raises for it) is the cluster's, not the
    build's: the build Pod is created again, after BUILD_RETRY_S; busy for good, the build fails saying so."""
    create, calls = runtime.kube.create_pod, []

    def busy_once(namespace: str, pod: dict[str, Any]) -> Any:
        calls.append(pod["metadata"]["name"])
        if len(calls) == 1:
            raise KubeError("create Pod: 429 TooManyRequests", status=429)
        return create(namespace, pod)

    monkeypatch.setattr(podimages, "BUILD_RETRY_S", 0.1)
    monkeypatch.setattr(runtime.kube, "create_pod", busy_once)
    built = _build(runtime, base, ["apt:jq"], {"SPRINT_MARK": uuid.uuid4().hex})  # a tag not built yet
    assert built.built and len(calls) == 2 and calls[0] != calls[1], calls

    def busy(namespace: str, pod: dict[str, Any]) -> Any:
        calls.append(pod["metadata"]["name"])
        raise KubeError("create Pod: 429 TooManyRequests", status=429)

    calls.clear()
    monkeypatch.setattr(runtime.kube, "create_pod", busy)
    with pytest.raises(ImageBuildFailed, match=r"the cluster's: PodFailed, 3 attempts") as failed:
        runtime.ensure_sprint_image(base, ["apt:jq"], {"SPRINT_MARK": uuid.uuid4().hex}, {})
    assert len(calls) == podimages.BUILD_ATTEMPTS == 3 and "429" in failed.value.log_tail


def test_two_sprints_asking_for_the_same_new_image_at_once_get_one_build(
    runtime: PodsRuntime, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One build Pod for one configuration: the second caller waits for the first's build and uses its
    image (built=False, the same digest)."""
    create, created = runtime.kube.create_pod, []

    def counted(namespace: str, pod: dict[str, Any]) -> Any:
        created.append(pod["metadata"]["name"])
        return create(namespace, pod)

    monkeypatch.setattr(runtime.kube, "create_pod", counted)
    mark = uuid.uuid4().hex  # a configuration not built yet
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        asked = [pool.submit(_build, runtime, base, ["apt:jq"], {"SPRINT_MARK": mark}) for _ in range(2)]
        results = [future.result(timeout=900) for future in asked]
    assert sorted(r.built for r in results) == [False, True], results
    assert results[0].tag == results[1].tag and len(created) == 1, (results, created)
