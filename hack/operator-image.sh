#!/usr/bin/env bash
# Build the operator image (Containerfile) with Podman, offline: the host's pip fetches the pinned
# dependency wheels once (cached by the hash of pyproject.toml), the build installs from them.
# Env: OPERATOR_IMAGE (tag), BASE_IMAGE (tag). Prints the tag on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
version=$(awk -F'"' '/^version = /{print $2; exit}' "$repo/pyproject.toml")
tag="${OPERATOR_IMAGE:-localhost/sprint-orchestrator/operator:$version}"
base="${BASE_IMAGE:-localhost/sprint-orchestrator/base:bookworm}"
pip="$repo/.venv/bin/pip"
key=$(cat "$repo/pyproject.toml" <("$pip" --version) | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator/operator-wheels/$key"
wheels="$repo/build/operator-image/wheels"

log() { echo "operator-image: $*" >&2; }

podman image exists "$base" || bash "$here/base-image.sh" >/dev/null
if [ ! -f "$cache/.complete" ]; then
    log "fetching the pinned dependency wheels into $cache"
    rm -rf "$cache" && mkdir -p "$cache"
    pip_version=$("$pip" --version | awk '{print $2}')
    "$pip" wheel --quiet --wheel-dir "$cache" "pip==$pip_version" "setuptools>=77" wheel "$repo"
    rm -f "$cache"/sprint_orchestrator-*.whl
    touch "$cache/.complete"
fi
rm -rf "$wheels" && mkdir -p "$wheels"
cp "$cache"/*.whl "$wheels/"
log "building $tag from $base"
podman build --network none --build-arg "BASE_IMAGE=$base" -t "$tag" -f "$repo/Containerfile" "$repo" >&2
echo "$tag"
