"""The sprint image of the pods runtime: built only where something must be baked in, always by digest.

Where the operator runs decides what it can build. As a process on a machine with Podman it builds the
sprint image as the Podman runtime does and pushes it to `containers.registry`. In a Pod at the
restricted Pod Security level there is no Podman (no user namespaces, no privilege), so:

- a sprint with no `container.dependencies` and no `container.environment` needs no build at all: its
  base image (`containers.base_image` or the Sprint's `container.baseImage`, already in a registry) is
  used as it is, pinned to the digest the registry answers (`registry.pin`);
- a sprint that needs a build, or a base image that exists only in the local Podman store
  (`localhost/…`), needs Podman; without it the sprint fails at once with `ImageBuildFailed` and a
  sentence saying what to do (bake the dependencies into an image in the registry and name it). A
  build Pod (an unprivileged image builder scheduled by the operator) is a later step.

Either way the Pods get `HOST/NAME@sha256:…`: every Pod of a sprint runs the same image even if a tag
moves.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ..errors import ImageBuildFailed, RuntimeUnavailable
from . import ImageResult, registry

LOCAL_PREFIX = "localhost/"


def needs_build(base_image: str, dependencies: Sequence[str], environment: Mapping[str, str]) -> bool:
    return bool(dependencies or environment) or base_image.startswith(LOCAL_PREFIX)


def sprint_image(
    base_image: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    target_registry: str,
    plain_http: Collection[str],
    podman: Callable[[], Any],
) -> ImageResult:
    """The digest reference task Pods run; `podman()` connects to Podman only if a build is needed."""
    if not needs_build(base_image, dependencies, environment):
        return ImageResult(registry.pin(base_image, plain_http), built=False)
    try:
        builder = podman()
    except RuntimeUnavailable as exc:
        what = "its dependencies and environment" if dependencies or environment else "a local image"
        raise ImageBuildFailed(
            f"this sprint's image needs a build ({what}: {base_image}) and there is no Podman where the "
            "operator runs (in a cluster there is none); push an image with the dependencies baked in to "
            "the registry and name it in container.baseImage or containers.base_image "
            f"({exc})"
        ) from None
    local = builder.ensure_sprint_image(base_image, dependencies, environment, labels)
    target = f"{target_registry}/{local.tag.removeprefix(LOCAL_PREFIX)}"
    builder.push_image(local.tag, target)
    return ImageResult(registry.pin(target, plain_http), local.built)
