"""The build Pod: a sprint's packages installed in the cluster, unprivileged, into a layer (pure parts).

In a Pod at the restricted Pod Security level nothing runs as root, so nothing is installed the way a
Containerfile's `RUN apt-get install` does. The build Pod runs the sprint's base image as the agent's
non-root user and installs into a tree it moves to /artifacts, which the wrapper uploads; the operator
streams it into an image layer (ocilayer.py) on top of the base image (ociimage.py):

- **apt**: `apt-get` with its lists, caches and sources under the Pod's own work directory (no lock, no
  root) downloads the packages the base image lacks (resolved against the base's own dpkg status), and
  `dpkg-deb -x` unpacks each into the layer; the base's dpkg status plus each package's control fields
  becomes the layer's `/var/lib/dpkg/status`, so `dpkg -l` and later `apt-get` see them. What does not
  happen: maintainer scripts (a package that needs its `postinst` to work, such as one registering
  alternatives or creating users, needs an image baked beforehand).
- **pip**: `python3 -m pip install --root` that tree (the image's own scheme, /usr/local); a base
  image without pip gets Debian's `python3-pip` from the apt sources first, as the Podman build does.

The Pod reaches the configured package sources only: its NetworkPolicy lets it out to their addresses,
resolved by the operator when the build starts, on their ports, and `hostAliases` names them (no DNS).
A Sprint author names packages, never a source (images.py checks every name); the values travel as
environment variables, word-split with globbing off, never as script text.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import Limits, images

BUILD_LIMITS = Limits(cpus=1.0, memory_bytes=2 << 30)
BUILD_TIMEOUT_S = 1800.0
LAYER_MAX_BYTES = 4 << 30
TMP_LIMIT = "5Gi"  # the wrapper spools the layer's tar in /tmp before uploading it

SCRIPT = r"""set -euf
w=/workspace/.so-build; out="$w/root"; trap 'rm -rf "$w"' EXIT
mkdir -p "$w/lists/partial" "$w/archives/partial" "$w/cache" "$out"
if [ -n "$SO_PIP_PACKAGES" ] && [ -n "$SO_APT_SOURCES" ] && ! python3 -m pip --version >/dev/null 2>&1; then
  SO_APT_PACKAGES="$SO_APT_PACKAGES python3-pip"
fi
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "sprint-orchestrator: the base image has no $1: $2" >&2; exit 2; }
}
if [ -n "$SO_APT_PACKAGES" ]; then
  need apt-get "apt: packages need a Debian-based base image"
  need dpkg-deb "apt: packages need a Debian-based base image"
  . /etc/os-release
  for url in $SO_APT_SOURCES; do echo "deb $url $VERSION_CODENAME main"; done > "$w/sources.list"
  set -- -o "Dir::Etc::SourceList=$w/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
    -o "Dir::State::Lists=$w/lists" -o "Dir::Cache=$w/cache" -o "Dir::Cache::archives=$w/archives" \
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o Debug::NoLocking=1 -o APT::Sandbox::User=
  apt-get "$@" -q update
  apt-get "$@" -q -y --download-only --no-install-recommends install $SO_APT_PACKAGES
  mkdir -p "$out/var/lib/dpkg"
  cp /var/lib/dpkg/status "$out/var/lib/dpkg/status"
  for deb in $(find "$w/archives" -maxdepth 1 -name '*.deb' | sort); do
    echo "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$out"
    { dpkg-deb -f "$deb"; echo "Status: install ok installed"; echo; } >> "$out/var/lib/dpkg/status"
  done
fi
if [ -n "$SO_PIP_PACKAGES" ]; then
  need python3 "pip: packages need Python 3 in the base image"
  set --
  for url in $SO_PIP_SOURCES; do
    if [ $# -eq 0 ]; then set -- --index-url "$url"; else set -- "$@" --extra-index-url "$url"; fi
  done
  for host in $SO_PIP_TRUSTED; do set -- "$@" --trusted-host "$host"; done
  PYTHONPATH="$out/usr/lib/python3/dist-packages" python3 -m pip install --no-cache-dir \
    --disable-pip-version-check --no-input --break-system-packages --root "$out" "$@" $SO_PIP_PACKAGES
fi
# The tree is built where this user owns its top (the volume's own top is not ours to chmod), then moved.
find "$out" -mindepth 1 -maxdepth 1 -exec mv -t /artifacts {} +
"""


@dataclass(frozen=True)
class Route:
    """A package source as the build Pod reaches it: by address, on one port, under its host name."""

    host: str
    addresses: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class Network:
    """What a build Pod may reach besides the operator: its NetworkPolicy's extra egress and its
    /etc/hosts entries."""

    aliases: dict[str, list[str]]
    egress: list[tuple[str, int]]


def network(
    dependencies: Sequence[str], sources: images.PackageSources, resolve: Callable[[str], tuple[str, ...]]
) -> Network:
    """Where the build Pod may go, with `resolve` (host -> its IPv4 addresses, the caller's DNS)."""
    found = routes(dependencies, sources, resolve)
    return Network(host_aliases(found), egress(found))


def environment(dependencies: Sequence[str], sources: images.PackageSources) -> dict[str, str]:
    """The build's inputs, each a space-separated list of checked words. The apt sources go along with
    pip packages too: a base image without pip gets Debian's python3-pip from them."""
    deps = images.split_dependencies(dependencies)
    return {
        "SO_APT_PACKAGES": " ".join(deps.apt),
        "SO_APT_SOURCES": " ".join(sources.apt) if deps.apt or deps.pip else "",
        "SO_PIP_PACKAGES": " ".join(deps.pip),
        "SO_PIP_SOURCES": " ".join(sources.pip) if deps.pip else "",
        "SO_PIP_TRUSTED": " ".join(plain_http_hosts(sources.pip)) if deps.pip else "",
    }


def plain_http_hosts(urls: Sequence[str]) -> list[str]:
    """The host[:port] of each http:// index: an admin who configured one chose it (pip refuses it
    without --trusted-host)."""
    return sorted({urllib.parse.urlsplit(u).netloc for u in urls if u.startswith("http://")})


def command() -> list[str]:
    return ["/bin/sh", "-c", SCRIPT, "so-build"]


def routes(
    dependencies: Sequence[str], sources: images.PackageSources, resolve: Callable[[str], tuple[str, ...]]
) -> list[Route]:
    """Where the build goes: each source the build uses, with its addresses."""
    env = environment(dependencies, sources)
    urls = env["SO_APT_SOURCES"].split() + env["SO_PIP_SOURCES"].split()
    found: dict[tuple[str, int], Route] = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found.setdefault((host, port), Route(host, resolve(host), port))
    return list(found.values())


def host_aliases(found: Sequence[Route]) -> dict[str, list[str]]:
    """address -> host names, for the Pod's /etc/hosts (names that are addresses need none)."""
    aliases: dict[str, list[str]] = {}
    for route in found:
        if route.addresses != (route.host,):
            for address in route.addresses:
                aliases.setdefault(address, [])
                if route.host not in aliases[address]:
                    aliases[address].append(route.host)
    return aliases


def egress(found: Sequence[Route]) -> list[tuple[str, int]]:
    return sorted({(address, route.port) for route in found for address in route.addresses})


def describe(dependencies: Sequence[str], environment_vars: Mapping[str, str]) -> str:
    deps = images.split_dependencies(dependencies)
    parts = [
        f"apt: {' '.join(deps.apt)}" if deps.apt else "",
        f"pip: {' '.join(deps.pip)}" if deps.pip else "",
        f"env: {' '.join(sorted(environment_vars))}" if environment_vars else "",
    ]
    return "; ".join(p for p in parts if p)
