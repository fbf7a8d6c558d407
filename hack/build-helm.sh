#!/usr/bin/env bash
# Build Helm (helm.sh/helm/v3/cmd/helm, pinned in hack/helm/go.mod) from the Go module proxy into
# hack/bin/helm. Cached outside the checkout, keyed by go.mod, go.sum and the Go version, like
# hack/build-control-plane.sh: the build runs only when the cache is missing or stale.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/helm"
bin="$here/bin"
cache_root="${SPRINT_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator}"
key=$(cat "$mod/go.mod" "$mod/go.sum" <(go version) | sha256sum | cut -c1-16)
cache="$cache_root/helm/$key"
version=$(awk '$1=="helm.sh/helm/v3"{print $2; exit}' "$mod/go.mod")
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"

mkdir -p "$cache" "$bin"
if [ ! -x "$cache/helm" ]; then
  echo "building helm $version ..." >&2
  start=$(date +%s)
  # A unique temporary name: two checkouts building at once must not move each other's half-built file.
  tmp=$(mktemp "$cache/helm.XXXXXX")
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm)
  chmod 755 "$tmp"
  mv -f "$tmp" "$cache/helm"
  echo "built helm in $(( $(date +%s) - start ))s" >&2
fi
ln -sf "$cache/helm" "$bin/helm"
echo "$bin/helm"
