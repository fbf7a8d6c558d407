#!/usr/bin/env bash
# hack/base-image.sh — build the local base image localhost/sprint-orchestrator/base:bookworm without a
# registry: debootstrap a minimal Debian bookworm, `podman import` it, then a `podman build` layer adding
# git, python3 and python3-pytest. Cached twice: the debootstrap tarball lives under
# ${XDG_CACHE_HOME:-~/.cache}/sprint-orchestrator/, and the whole build is skipped when the image exists
# and carries the hash of this script as its label. Env: MIRROR (Debian mirror URL; defaults to the
# first Debian URI of the host's apt sources), BASE_IMAGE (tag), FORCE=1 (rebuild).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
tag="${BASE_IMAGE:-localhost/sprint-orchestrator/base:bookworm}"
rootfs_tag="localhost/sprint-orchestrator/rootfs:bookworm"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator/base"
hash=$(sha256sum "$0" | cut -c1-16)
label="sprintorchestrator.dev/base-hash"

log() { echo "base-image: $*" >&2; }

current=$(podman image inspect "$tag" --format "{{index .Labels \"$label\"}}" 2>/dev/null || true)
if [ "${FORCE:-0}" != 1 ] && [ "$current" = "$hash" ]; then
    log "$tag is up to date (hash $hash)"
    echo "$tag"
    exit 0
fi

host_mirror() {
    # First Debian (non-security) archive URI of the host's apt configuration.
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
    grep -h -o -E '(URIs:|^deb)[[:space:]]+[^[:space:]]+/debian/?([[:space:]]|$)' "${files[@]}" 2>/dev/null \
        | awk '{print $2}' | head -n1 || true
}

mkdir -p "$cache"
tarball="$cache/bookworm-minbase.tar"
if [ ! -s "$tarball" ]; then
    mirror="${MIRROR:-$(host_mirror)}"
    if [ -z "$mirror" ]; then
        log "no Debian mirror found in /etc/apt; set MIRROR=<Debian archive URL> and re-run"
        exit 1
    fi
    for tool in debootstrap podman; do
        command -v "$tool" >/dev/null || { log "$tool is missing: run hack/setup-podman.sh first"; exit 1; }
    done
    work=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    log "debootstrap --variant=minbase bookworm from $mirror (about 30 s)"
    debootstrap --variant=minbase bookworm "$work" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -n 20 "$cache/debootstrap.log" >&2; log "debootstrap failed; full log: $cache/debootstrap.log"; exit 1; }
    tar -C "$work" --exclude=./var/cache/apt/archives --exclude=./var/lib/apt/lists \
        --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
    trap - EXIT
fi

log "importing the rootfs as $rootfs_tag"
podman import "$tarball" "$rootfs_tag" >/dev/null

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $rootfs_tag
RUN apt-get update \\
 && apt-get install -y --no-install-recommends git python3 python3-pytest ca-certificates \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \\
 && useradd --uid 1000 --create-home --home-dir /home/agent agent \\
 && mkdir -p /workspace /artifacts /opt/demo-recipes
# Keep caches out of the task's workspace: the operator commits whatever the team leaves there.
ENV PYTHONDONTWRITEBYTECODE=1 PYTEST_ADDOPTS="-p no:cacheprovider" LANG=C.UTF-8
WORKDIR /workspace
LABEL $label="$hash"
CONTAINERFILE
log "building $tag (apt-get install git python3 python3-pytest)"
podman build --network host --layers=false -t "$tag" -f "$ctx/Containerfile" "$ctx" >"$cache/build.log" 2>&1 \
    || { tail -n 20 "$cache/build.log" >&2; log "podman build failed; full log: $cache/build.log"; exit 1; }
podman image prune -f >/dev/null 2>&1 || true
log "built $tag (hash $hash)"
echo "$tag"
