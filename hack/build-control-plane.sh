#!/usr/bin/env bash
# Build the upstream etcd, kube-apiserver, kube-controller-manager, kubectl and, for the nodes,
# kube-scheduler, kubelet and kube-proxy from the Go module in hack/testcluster into hack/bin. The binaries are
# cached outside the checkout, keyed by go.mod, go.sum and the Go version, so a fresh clone on the same
# machine links them in seconds; the build runs only when the cache is missing or stale.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/testcluster"
bin="$here/bin"
cache_root="${SPRINT_ORCHESTRATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator}"
key=$(cat "$mod/go.mod" "$mod/go.sum" <(go version) | sha256sum | cut -c1-16)
cache="$cache_root/control-plane/$key"
tools=(etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet kube-proxy)
declare -A pkgs=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
)
k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$mod/go.mod")
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

mkdir -p "$cache" "$bin"
for t in "${tools[@]}"; do
  if [ ! -x "$cache/$t" ]; then
    echo "building $t (${pkgs[$t]}) ..." >&2
    start=$(date +%s)
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$cache/$t.tmp" "${pkgs[$t]}")
    mv "$cache/$t.tmp" "$cache/$t"
    echo "built $t in $(( $(date +%s) - start ))s" >&2
  fi
  ln -sf "$cache/$t" "$bin/$t"
done
echo "$bin"
