#!/usr/bin/env bash
# Build what a local node needs beyond the Kubernetes binaries (kubelet and kube-scheduler come from
# hack/build-control-plane.sh): the Pod sandbox program and its image, the CNCF distribution registry
# and kube-router (for its NetworkPolicy firewall), each from its pinned Go module in hack/. Cached
# outside the checkout like the control plane, keyed by the module's go.mod, go.sum, sources and the Go
# version; the build runs only when the cache is missing or stale. Prints hack/bin.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/bin"
cache_root="${SPRINT_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator}"
mkdir -p "$bin"
shopt -s nullglob

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: go build PACKAGE in MODULE_DIR into the cache, link into hack/bin.
build() {
  local name=$1 mod=$here/$2 pkg=$3 ldflags=${4:-}
  local key cache start
  key=$(cat "$mod"/go.[ms]* "$mod"/*.go <(go version) | sha256sum | cut -c1-16)
  cache="$cache_root/node/$name/$key"
  mkdir -p "$cache"
  if [ ! -x "$cache/$name" ]; then
    echo "building $name ($pkg) ..." >&2
    start=$(date +%s)
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w $ldflags" -o "$cache/$name.tmp" "$pkg")
    mv "$cache/$name.tmp" "$cache/$name"
    echo "built $name in $(( $(date +%s) - start ))s" >&2
  fi
  ln -sf "$cache/$name" "$bin/$name"
}

build pause pause .
registry_version=$(awk '$1=="github.com/distribution/distribution/v3"{print $2; exit}' "$here/registry/go.mod")
build registry registry github.com/distribution/distribution/v3/cmd/registry \
  "-X github.com/distribution/distribution/v3/version.version=$registry_version"
kube_router_version=$(awk '$1=="github.com/cloudnativelabs/kube-router/v2"{print $2; exit}' "$here/netpol/go.mod")
build kube-router netpol github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
  "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kube_router_version"

# The sandbox image: the pause program alone, built with Podman and saved as an archive that each
# node's containerd imports (no registry is reachable, and the local one starts after the nodes).
tag="localhost/sprint-orchestrator/pause:local"  # PAUSE_IMAGE in hack/localnode.py
pause_key=$(cat "$bin/pause" <(echo "$tag") | sha256sum | cut -c1-16)
archive="$cache_root/node/pause-image/$pause_key/pause.tar"
if [ ! -s "$archive" ]; then
  mkdir -p "$(dirname "$archive")"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$(readlink -f "$bin/pause")" "$ctx/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$ctx/Containerfile"
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
  podman build -q --no-cache -t "$tag" -f "$ctx/Containerfile" "$ctx" >/dev/null
  podman save -q --format docker-archive -o "$archive.tmp" "$tag"
  podman rmi -f "$tag" >/dev/null
  mv "$archive.tmp" "$archive"
fi
ln -sf "$archive" "$bin/pause.tar"
echo "$bin"
