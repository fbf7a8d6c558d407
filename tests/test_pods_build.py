"""A sprint image built inside the cluster, no Podman involved: a build Pod installs the sprint's Debian
packages unprivileged, the operator makes its upload a layer, assembles the image in the cluster's
registry, and task Pods run it by digest (real nodes, the real registry, the Debian archive)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _node import pods_runtime, two_nodes
from _podman import build_base_image, host_debian_sources
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.errors import ImageBuildFailed
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


@pytest.fixture(scope="module")
def runtime(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodsRuntime]:
    sources = host_debian_sources()
    if not sources:
        pytest.skip("this machine's apt names no Debian archive")
    with pods_runtime(nodes, tmp_path_factory.mktemp("state"), "build", registry_plain_http=True) as pods:
        pods.package_sources = images.PackageSources(apt=sources)
        pods._podman = _NoPodman()  # a build that reached for Podman would fail loudly
        yield pods


class _NoPodman:
    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the in-cluster build used Podman ({name})")

    def close(self) -> None:
        pass


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
    built = runtime.ensure_sprint_image(base, ["apt:jq"], {"SPRINT_MARK": mark}, {"purpose": "test"})
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
    built = runtime.ensure_sprint_image(base, [], {"SPRINT_MARK": mark, "LANG": "C.UTF-8"}, {})
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
