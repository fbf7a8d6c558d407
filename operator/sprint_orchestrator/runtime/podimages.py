"""The sprint image of the pods runtime: built only where something must be baked in, always by digest,
and without Podman unless the base image exists only in the local Podman store.

- a sprint with no `container.dependencies` and no `container.environment` needs no build at all: its
  base image (`containers.base_image` or the Sprint's `container.baseImage`, already in a registry) is
  used as it is, pinned to the digest the registry answers (`registry.pin`);
- otherwise the image is assembled in the registry (`ociimage.py`): the base image's layers (mounted,
  not copied, when base and `containers.registry` share a registry), for packages one more layer made
  by a **build Pod** in the cluster (`podbuild.py`: unprivileged, at the restricted level, reaching only
  the configured package sources), and a config with the sprint's environment. Its tag is the hash of
  exactly those inputs (`images.config_hash`, the base by its digest), so an identical configuration is
  built once: a tag already in the registry is used as it is, and a second sprint asking for it
  while it is being built waits for that build;
- a base image that exists only in the local Podman store (`localhost/…`) needs Podman where the
  operator runs (built and pushed as the Podman runtime does); without it the sprint fails at once with
  `ImageBuildFailed` saying to push the image to a registry.

Either way the Pods get `HOST/NAME@sha256:…`: every Pod of a sprint runs the same image even if a tag
moves.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ImageBuildFailed, PodRejected, RuntimeUnavailable
from ..stamps import now_iso
from . import ImageResult, images, ociimage, podbuild, podoneshot, registry
from .ocilayer import Layer

if TYPE_CHECKING:
    from .pods import PodsRuntime

LOCAL_PREFIX = "localhost/"
REPOSITORY = images.SPRINT_REPOSITORY.removeprefix(LOCAL_PREFIX)

log = logging.getLogger(__name__)
BUILD_ATTEMPTS = 3  # runs of a build Pod the cluster cut short, before the sprint fails
BUILD_RETRY_S = 5.0  # times the attempt: 5 s, then 10 s
_BUILDS: dict[str, threading.Lock] = {}  # image reference -> its build's lock (one per configuration)
_BUILDS_GUARD = threading.Lock()


def needs_build(base_image: str, dependencies: Sequence[str], environment: Mapping[str, str]) -> bool:
    return bool(dependencies or environment) or base_image.startswith(LOCAL_PREFIX)


def sprint_image(
    rt: PodsRuntime,
    base_image: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    podman: Callable[[], Any],
) -> ImageResult:
    """The digest reference task Pods run; `podman()` connects to Podman only for a local base image."""
    target_registry, plain = str(rt.registry), list(rt.plain_http)
    if not needs_build(base_image, dependencies, environment):
        return ImageResult(registry.pin(base_image, plain, rt.registry_auth), built=False)
    if base_image.startswith(LOCAL_PREFIX):
        return _with_podman(base_image, dependencies, environment, labels, target_registry, plain, podman)
    return build_in_cluster(rt, base_image, dependencies, environment, labels)


def build_in_cluster(
    rt: PodsRuntime,
    base_image: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
) -> ImageResult:
    sources, plain, auth = rt.package_sources, list(rt.plain_http), rt.registry_auth
    problems = images.missing_sources(dependencies, sources)
    if problems:
        raise ImageBuildFailed(" ".join(problems), "")
    base = registry.pin(base_image, plain, auth)
    tag = images.config_hash(base.rsplit("@", 1)[1], dependencies, environment, sources)
    target = f"{rt.registry}/{REPOSITORY}"
    parsed = registry.parse(f"{target}:{tag}")
    with _building(f"{target}:{tag}"):  # sprints asking for the same new image at once: one build
        if registry.Session(parsed.host, plain, auth).has_manifest(parsed.name, tag):
            return ImageResult(registry.pin(f"{target}:{tag}", plain, auth), built=False)
        marks = {**labels, images.LABEL_IMAGE_HASH: tag}
        work = Path(tempfile.mkdtemp(prefix="build-", dir=_builds_dir(rt)))
        try:
            layer = _packages_layer(rt, base, dependencies, work) if dependencies else None
            what = podbuild.describe(dependencies, environment)
            pinned = ociimage.assemble(
                base, target, tag, environment, marks, layer, now_iso(), plain, what, auth
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ImageResult(pinned, built=True)


def _building(reference: str) -> threading.Lock:
    """The lock of one image reference: the second sprint waits for the first's build and uses it."""
    with _BUILDS_GUARD:
        return _BUILDS.setdefault(reference, threading.Lock())


def _packages_layer(rt: PodsRuntime, base: str, dependencies: Sequence[str], work: Path) -> Layer:
    """The build Pod's layer; a run the cluster cut short (the Pod not taken for now, evicted, its node
    lost) is run again, up to BUILD_ATTEMPTS times, never counted as the build's own failure."""
    env = podbuild.environment(dependencies, rt.package_sources)
    route = podbuild.network(dependencies, rt.package_sources, _resolve)
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        try:
            outcome, layer = podoneshot.build(
                rt, base, env, work / f"layer-{uuid.uuid4().hex[:8]}.tar.gz", route
            )
        except PodRejected as exc:
            raise ImageBuildFailed(f"the build Pod of the sprint image was refused: {exc}", "") from None
        if not outcome.infrastructure or attempt == BUILD_ATTEMPTS:
            break
        log.warning(
            "the build Pod of %s did not run through (%s, attempt %d of %d); running it again",
            base, outcome.infrastructure, attempt, BUILD_ATTEMPTS,
        )  # fmt: skip
        time.sleep(BUILD_RETRY_S * attempt)
    if outcome.exit_code != 0 or layer is None:
        why = "timed out" if outcome.timed_out else f"exit {outcome.exit_code}"
        if outcome.infrastructure:
            why = f"the cluster's: {outcome.infrastructure}, {BUILD_ATTEMPTS} attempts"
        raise ImageBuildFailed(
            f"the build Pod of the sprint image failed ({why}) installing "
            f"{podbuild.describe(dependencies, {})} on {base}",
            outcome.log_tail,
        )
    return layer


def _resolve(host: str) -> tuple[str, ...]:
    """A package source's IPv4 addresses, looked up when its build starts (the NetworkPolicy's peers)."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise ImageBuildFailed(f"containers.package_sources: cannot resolve {host}: {exc}", "") from None
    return tuple(sorted({str(info[4][0]) for info in infos}))


def _builds_dir(rt: PodsRuntime) -> Path:
    path = rt.log_dir.parent / "builds"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _with_podman(
    base_image: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    target_registry: str,
    plain_http: Collection[str],
    podman: Callable[[], Any],
) -> ImageResult:
    try:
        builder = podman()
    except RuntimeUnavailable as exc:
        raise ImageBuildFailed(
            f"container.baseImage: {base_image} exists only in a local Podman store and there is no "
            "Podman where the operator runs (in a cluster there is none); push it to a registry and "
            f"name it in container.baseImage or containers.base_image ({exc})"
        ) from None
    local = builder.ensure_sprint_image(base_image, dependencies, environment, labels)
    target = f"{target_registry}/{local.tag.removeprefix(LOCAL_PREFIX)}"
    builder.push_image(local.tag, target)
    return ImageResult(registry.pin(target, plain_http), local.built)
