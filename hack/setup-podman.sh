#!/usr/bin/env bash
# hack/setup-podman.sh — install and check what the orchestrator needs from the host: podman, runc
# (crun fails on hybrid cgroups here) and debootstrap (for hack/base-image.sh). Idempotent: installs only
# what is missing, runs `apt-get update` only when an install needs it, and finally runs a hardened
# container to prove the runtime works with the project's containers.conf.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="$here/containers.conf"

missing=()
for pkg in podman runc debootstrap uidmap e2fsprogs mount; do
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

# Each task container gets its own user namespace (Podman's userns=auto takes its ids from the
# `containers` ranges): root in a container is an unprivileged id on the host. Appended once.
if [ "$(id -u)" -eq 0 ]; then
    for file in /etc/subuid /etc/subgid; do
        touch "$file"
        grep -q '^containers:' "$file" || echo 'containers:2147483647:2147483648' >> "$file"
    done
fi

# A task's disk cap is an ext4 image loop-mounted under the state dir (runtime/disks.py).
for tool in mkfs.ext4 losetup mount umount; do
    command -v "$tool" >/dev/null || { echo "setup-podman: $tool is missing (e2fsprogs, mount)" >&2; exit 1; }
done

runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}')
if [ "$runtime" != "runc" ]; then
    echo "setup-podman: podman uses OCI runtime '$runtime', expected runc; is CONTAINERS_CONF=$CONTAINERS_CONF readable?" >&2
    exit 1
fi
echo "setup-podman: podman $(podman version --format '{{.Client.Version}}') with runc, containers.conf=$CONTAINERS_CONF"
echo "setup-podman: next, build the base image with hack/base-image.sh"
