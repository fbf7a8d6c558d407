#!/usr/bin/env bash
# Install everything the project needs on a fresh machine of this kind, idempotently:
# Debian packages (hack/apt-packages.txt), the Python virtualenv, the local control plane, the Podman
# base image, then a smoke check of what it set up (hack/smoke-check.sh). Each step is skipped when it
# is already up to date. `--packages-only`: the Debian packages alone (hack/fresh-check.sh uses it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*" >&2; }

mapfile -t apt_packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/apt-packages.txt" | awk '{print $1}')
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from outside Debian on this kind of machine: accept them when on PATH.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null || filtered+=("$p") ;;
    npm) command -v npm >/dev/null || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
if [ "${#filtered[@]}" -gt 0 ]; then
  step "apt-get install ${filtered[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
fi
if [ "${1:-}" = "--packages-only" ]; then exit 0; fi

step "Python virtualenv (.venv)"
stamp=$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-16)
if [ ! -x "$repo/.venv/bin/python" ] || [ "$(cat "$repo/.venv/.installed" 2>/dev/null)" != "$stamp" ]; then
  python3 -m venv "$repo/.venv"
  "$repo/.venv/bin/pip" install -q --upgrade pip
  "$repo/.venv/bin/pip" install -q -e "$repo[dev]"
  echo "$stamp" > "$repo/.venv/.installed"
fi

step "Podman (runc, containers.conf)"
bash "$here/setup-podman.sh"

step "local Kubernetes (etcd, kube-apiserver, kube-controller-manager, kubectl, kube-scheduler, kubelet)"
bash "$here/build-control-plane.sh" >/dev/null

step "Podman base image"
bash "$here/base-image.sh"

for extra in "$here"/setup.d/*.sh; do
  [ -e "$extra" ] || continue
  step "$(basename "$extra")"
  bash "$extra"
done

step "smoke check (a hardened task container, the control plane, Chromium)"
bash "$here/smoke-check.sh"
