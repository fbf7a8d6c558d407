"""Sprint images with Podman: the sprint's base image plus its declared dependencies, content-addressed
(`images.sprint_image_tag`), built once and shared by sprints; pushed to a registry for the Pods runtime.
Functions of a `PodmanRuntime` (podman.py is the adapter; this is its image half)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import podman.errors
from podman import PodmanClient

from ..errors import ImageBuildFailed
from . import ImageResult, images, logs

if TYPE_CHECKING:
    from .podman import PodmanRuntime


def ensure_sprint_image(
    rt: PodmanRuntime,
    base_image: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
) -> ImageResult:
    try:
        base_id = rt.client.images.get(base_image).id
    except podman.errors.ImageNotFound:
        raise ImageBuildFailed(
            f"container.baseImage: image {base_image!r} not found; build it first (hack/base-image.sh; "
            "hack/agent-image.sh for the agent CLIs)"
        ) from None
    sources = rt.package_sources
    problems = images.missing_sources(dependencies, sources)
    if problems:
        raise ImageBuildFailed(" ".join(problems), "")
    tag = images.sprint_image_tag(base_id, dependencies, environment, sources)
    if rt.client.images.exists(tag):
        return ImageResult(tag, built=False)
    marks = {**labels, images.LABEL_IMAGE_HASH: tag.rsplit(":", 1)[1]}
    text = images.render_containerfile(base_image, dependencies, environment, marks, sources)
    build(rt, tag, text, images.build_network(dependencies, sources))
    return ImageResult(tag, built=True)


def push_image(rt: PodmanRuntime, tag: str, target: str) -> None:
    """Push a local image to a registry reference (plain HTTP allowed: the local cluster's registry)."""
    # Podman answers a push only when it is done: the API client's usual 30 s would cut a large one.
    with PodmanClient(base_url=rt.service.url, timeout=1800) as client:
        try:
            out = client.images.push(tag, destination=target, tlsVerify=False, stream=True, decode=True)
            for chunk in out:
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise ImageBuildFailed(f"pushing {tag} to {target} failed: {chunk['error']}", "")
        except (podman.errors.APIError, OSError) as exc:
            raise ImageBuildFailed(f"pushing {tag} to {target} failed: {exc}", "") from None


def build(rt: PodmanRuntime, tag: str, containerfile: str, network: str) -> None:
    with tempfile.TemporaryDirectory(prefix="sprint-image-") as ctx:
        (Path(ctx) / "Containerfile").write_text(containerfile)
        try:
            rt.client.images.build(
                path=ctx,
                dockerfile="Containerfile",
                tag=tag,
                network_mode=network,
                layers=False,
                rm=True,
                forcerm=True,
                timeout=1800,
            )
        except podman.errors.BuildError as exc:
            text = "".join(_chunk_text(chunk) for chunk in exc.build_log)
            raise ImageBuildFailed(
                f"building the sprint image {tag} failed: {exc.msg}", logs.tail(text)
            ) from None
        except podman.errors.APIError as exc:
            raise ImageBuildFailed(f"building the sprint image {tag} failed: {exc}", "") from None


def _chunk_text(chunk: Any) -> str:
    if isinstance(chunk, bytes):
        return chunk.decode(errors="replace")
    if isinstance(chunk, dict):
        return str(chunk.get("stream") or chunk.get("error") or "")
    return str(chunk)
