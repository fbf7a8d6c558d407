"""The sprint image, decided purely: its Containerfile and its content-addressed tag.

The sprint image is the base image + `container.dependencies` + `container.environment`. Its tag is a
hash of exactly those inputs (the base image by its image id, so rebuilding the base rebuilds the
sprint images), so an identical configuration is never built twice:

    sprint_image_tag("sha256:ab…", ["apt:jq", "pip:requests==2.32.3"], {"LANG": "C.UTF-8"})
    -> "localhost/sprint-orchestrator/sprint:3f2a…" (16 hex digits)

Dependencies are "apt:NAME" (Debian package), "pip:SPEC" (a pip requirement) or a bare NAME (Debian).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidInput

SPRINT_REPOSITORY = "localhost/sprint-orchestrator/sprint"
LABEL_IMAGE_HASH = "sprintorchestrator.dev/image-hash"
_APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?")
_PIP_SPEC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[A-Za-z0-9.*+!-]+,?)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")


@dataclass(frozen=True)
class Dependencies:
    apt: tuple[str, ...]
    pip: tuple[str, ...]


def split_dependencies(dependencies: Sequence[str]) -> Dependencies:
    """Sort dependencies into Debian and pip packages, rejecting anything that is not a plain name."""
    apt: list[str] = []
    pip: list[str] = []
    for i, dep in enumerate(dependencies):
        kind, _, name = dep.partition(":") if ":" in dep else ("apt", "", dep)
        pattern, bucket = (_PIP_SPEC, pip) if kind == "pip" else (_APT_NAME, apt)
        if kind not in ("apt", "pip") or not pattern.fullmatch(name):
            raise InvalidInput(
                f'container.dependencies[{i}]: {dep!r} is not "apt:NAME", "pip:SPEC" or a Debian package name'
            )
        bucket.append(name)
    return Dependencies(tuple(sorted(set(apt))), tuple(sorted(set(pip))))


def sprint_image_tag(base_image_id: str, dependencies: Sequence[str], environment: Mapping[str, str]) -> str:
    return f"{SPRINT_REPOSITORY}:{config_hash(base_image_id, dependencies, environment)}"


def config_hash(base_image_id: str, dependencies: Sequence[str], environment: Mapping[str, str]) -> str:
    deps = split_dependencies(dependencies)
    canonical = json.dumps(
        {"base": base_image_id, "apt": deps.apt, "pip": deps.pip, "env": dict(sorted(environment.items()))},
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def render_containerfile(
    base_image: str, dependencies: Sequence[str], environment: Mapping[str, str], labels: Mapping[str, str]
) -> str:
    """The Containerfile of a sprint image. Values are JSON-quoted, so no input can add an instruction."""
    deps = split_dependencies(dependencies)
    apt = list(deps.apt) + (["python3-pip"] if deps.pip else [])
    if not _IMAGE_REF.fullmatch(base_image):
        raise InvalidInput(f"container.baseImage: {base_image!r} is not an image reference")
    lines = [f"FROM {base_image}", "USER root"]
    if apt:
        lines.append(
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(apt)
            + " && rm -rf /var/lib/apt/lists/*"
        )
    if deps.pip:
        lines.append(
            "RUN python3 -m pip install --no-cache-dir --break-system-packages " + " ".join(deps.pip)
        )
    for name, value in sorted(environment.items()):
        if not _ENV_NAME.fullmatch(name):
            raise InvalidInput(f"container.environment: {name!r} is not a valid variable name")
        lines.append(f"ENV {name}={_quote(value, f'container.environment.{name}')}")
    for key, value in sorted(labels.items()):
        lines.append(f"LABEL {_quote(key, 'label')}={_quote(value, f'label {key}')}")
    lines.append("WORKDIR /workspace")
    return "\n".join(lines) + "\n"


def _quote(value: str, where: str) -> str:
    """A double-quoted Containerfile word: no variable expansion, no line breaks."""
    if any(ord(c) < 32 for c in value):
        raise InvalidInput(f"{where}: control characters (such as line breaks) are not allowed")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
