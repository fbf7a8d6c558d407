"""The sprint image, decided purely: its Containerfile and its content-addressed tag.

The sprint image is the base image + `container.dependencies` + `container.environment`. Its tag is a
hash of exactly those inputs (the base image by its image id, so rebuilding the base rebuilds the
sprint images), so an identical configuration is never built twice:

    sprint_image_tag("sha256:ab…", ["apt:jq", "pip:requests==2.32.3"], {"LANG": "C.UTF-8"})
    -> "localhost/sprint-orchestrator/sprint:3f2a…" (16 hex digits)

Dependencies are "apt:NAME" (Debian package), "pip:SPEC" (a pip requirement) or a bare NAME (Debian).

The build has **no network** unless the operator's configuration names the package sources it may use
(`containers.package_sources`: Debian archive URLs for apt, index URLs for pip). A Sprint that needs a
kind of package with no source configured is refused before anything is built (`missing_sources`);
otherwise the image's apt sources and pip index are replaced by exactly the configured ones, and only
then does the build get a network (`build_network`). A Sprint author cannot name a source: sources are
the admin's, dependencies the author's, and neither can add an instruction (every value is checked or
quoted).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInput

if TYPE_CHECKING:
    from ..settings import Settings

SPRINT_REPOSITORY = "localhost/sprint-orchestrator/sprint"
LABEL_IMAGE_HASH = "sprintorchestrator.dev/image-hash"
_APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?")
_PIP_SPEC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?([<>=!~]=?[A-Za-z0-9.*+!-]+,?)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")
_SOURCE_URL = re.compile(r"https?://[A-Za-z0-9._~:/@%+-]+")


@dataclass(frozen=True)
class PackageSources:
    """The package sources an image build may reach (the admin's `containers.package_sources`)."""

    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind, urls in (("apt", self.apt), ("pip", self.pip)):
            for i, url in enumerate(urls):
                if not _SOURCE_URL.fullmatch(url):
                    raise InvalidInput(
                        f"containers.package_sources.{kind}[{i}]: {url!r} is not an http(s) URL "
                        "(letters, digits and ._~:/@%+- only)"
                    )


def missing_sources(dependencies: Sequence[str], sources: PackageSources) -> list[str]:
    """One sentence per kind of dependency that has no configured source (the build would need one)."""
    deps = split_dependencies(dependencies)
    problems = []
    for kind, wanted, have in (("apt", deps.apt, sources.apt), ("pip", deps.pip, sources.pip)):
        if wanted and not have:
            problems.append(
                f"container.dependencies: {kind} packages ({', '.join(wanted)}) need a package source, and "
                f"sprint image builds have no network unless an admin names one in "
                f"containers.package_sources.{kind}"
            )
    return problems


def build_network(dependencies: Sequence[str], sources: PackageSources) -> str:
    """ "none" unless the build installs packages from configured sources ("host" then)."""
    deps = split_dependencies(dependencies)
    return "host" if (deps.apt or deps.pip) and not missing_sources(dependencies, sources) else "none"


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


def sprint_image_tag(
    base_image_id: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    sources: PackageSources = PackageSources(),
) -> str:
    return f"{SPRINT_REPOSITORY}:{config_hash(base_image_id, dependencies, environment, sources)}"


def config_hash(
    base_image_id: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    sources: PackageSources = PackageSources(),
) -> str:
    deps = split_dependencies(dependencies)
    doc: dict[str, object] = {
        "base": base_image_id, "apt": deps.apt, "pip": deps.pip, "env": dict(sorted(environment.items()))
    }  # fmt: skip
    if deps.apt:
        doc["aptSources"] = sources.apt
    if deps.pip:
        doc["pipIndexes"] = sources.pip
    canonical = json.dumps(doc, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def render_containerfile(
    base_image: str,
    dependencies: Sequence[str],
    environment: Mapping[str, str],
    labels: Mapping[str, str],
    sources: PackageSources = PackageSources(),
) -> str:
    """The Containerfile of a sprint image. Values are JSON-quoted, so no input can add an instruction.
    Packages come from the configured sources only: the image's own apt sources are replaced."""
    deps = split_dependencies(dependencies)
    apt = list(deps.apt) + (["python3-pip"] if deps.pip else [])
    if not _IMAGE_REF.fullmatch(base_image):
        raise InvalidInput(f"container.baseImage: {base_image!r} is not an image reference")
    problems = missing_sources(dependencies, sources)
    if problems:
        raise InvalidInput(problems[0])
    lines = [f"FROM {base_image}", "USER root"]
    if apt:
        entries = " ".join(sources.apt)
        lines.append(
            "RUN . /etc/os-release"
            + " && rm -f /etc/apt/sources.list.d/* && for url in "
            + entries
            + '; do echo "deb $url $VERSION_CODENAME main"; done > /etc/apt/sources.list'
            + " && apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(apt)
            + " && rm -rf /var/lib/apt/lists/*"
        )
    if deps.pip:
        index = [f"--index-url {sources.pip[0]}", *(f"--extra-index-url {u}" for u in sources.pip[1:])]
        plain = sorted({u.split("/")[2] for u in sources.pip if u.startswith("http://")})
        index += [f"--trusted-host {host}" for host in plain]  # http:// is the admin's choice
        lines.append(
            "RUN python3 -m pip install --no-cache-dir --break-system-packages "
            + " ".join([*index, *deps.pip])
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


def package_sources(settings: Settings) -> PackageSources:
    """containers.package_sources of the configuration (none: sprint image builds have no network)."""
    section = getattr(getattr(settings.config, "containers", None), "package_sources", None)
    if section is None:
        return PackageSources()
    return PackageSources(tuple(section.apt), tuple(section.pip))
