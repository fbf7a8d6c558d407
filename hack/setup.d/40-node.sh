#!/usr/bin/env bash
# What `hack/cluster up --nodes N` needs beyond the control plane: the sandbox image, the registry and
# the NetworkPolicy enforcer (kubelet and kube-scheduler are built with the control plane).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/build-node.sh" >/dev/null
