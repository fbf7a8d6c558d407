#!/usr/bin/env bash
# hack/setup-podman.sh — install and check what the orchestrator needs from the host: podman, runc
# (crun fails on hybrid cgroups here) and debootstrap (for hack/base-image.sh). Idempotent: installs only
# what is missing, runs `apt-get update` only when an install needs it, and finally runs a hardened
# container to prove the runtime works with the project's containers.conf.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="$here/containers.conf"

missing=()
for pkg in podman runc debootstrap; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-podman: missing packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "setup-podman: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}')
if [ "$runtime" != "runc" ]; then
    echo "setup-podman: podman uses OCI runtime '$runtime', expected runc; is CONTAINERS_CONF=$CONTAINERS_CONF readable?" >&2
    exit 1
fi
echo "setup-podman: podman $(podman version --format '{{.Client.Version}}') with runc, containers.conf=$CONTAINERS_CONF"
echo "setup-podman: next, build the base image with hack/base-image.sh"
