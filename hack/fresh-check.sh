#!/usr/bin/env bash
# hack/fresh-check.sh — rehearse a fresh machine without one. A clean Debian bookworm rootfs (the same
# debootstrap --variant=minbase tarball hack/base-image.sh caches, or a new one) gets only hack/setup.sh's
# package step (`--packages-only`, hack/apt-packages.txt); then dpkg must show every file in
# hack/required-files.txt present and owned by the package named there. A package the project needs but
# installs only through another package's Recommends (catatonit, once) fails here, not on a user's
# machine. The machine image's own toolchains (python3 with venv, go) are checked on this host.
#   bash hack/fresh-check.sh          # about 2-4 minutes: downloads the packages into the rootfs
# Env: MIRROR (Debian archive URL; default: the host's first Debian source), KEEP=1 (keep the rootfs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator/base"
tarball="$cache/bookworm-minbase.tar"
log() { echo "fresh-check: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "run as root (it builds a chroot)"; exit 1; }

root=$(mktemp -d /var/tmp/sprint-fresh-check.XXXXXX)
mounted=()
cleanup() {
  local m
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then log "rootfs kept at $root"; else rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

host_mirror() {
  grep -h -o -E '(URIs:|^deb)[[:space:]]+[^[:space:]]+/debian/?([[:space:]]|$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '{print $2}' | head -n1 || true
}

if [ -s "$tarball" ]; then
  log "clean rootfs from the cached debootstrap tarball ($tarball)"
  tar -C "$root" --numeric-owner -xf "$tarball"
else
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  mirror="${MIRROR:-$(host_mirror)}"
  [ -n "$mirror" ] || { log "no Debian mirror found in /etc/apt; set MIRROR"; exit 1; }
  log "debootstrap --variant=minbase bookworm (about 30 s)"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
    || { tail -n 20 "$root.debootstrap.log" >&2; exit 1; }
  rm -f "$root.debootstrap.log"
fi

cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"  # no service starts in the chroot
chmod +x "$root/usr/sbin/policy-rc.d"
for fs in proc sys dev; do
  mkdir -p "$root/$fs"
  case "$fs" in
    proc) mount -t proc proc "$root/proc" ;;
    *) mount --rbind "/$fs" "$root/$fs" && mount --make-rslave "$root/$fs" ;;
  esac
  mounted+=("$root/$fs")
done
mkdir -p "$root/repo/hack"
cp "$here/setup.sh" "$here/apt-packages.txt" "$root/repo/hack/"

log "hack/setup.sh --packages-only in the clean rootfs (apt-get; a few minutes)"
if ! chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    bash /repo/hack/setup.sh --packages-only >"$root/setup.log" 2>&1; then
  tail -n 20 "$root/setup.log" >&2
  log "FAILED: the package step does not install on a clean Debian"
  exit 1
fi

problems=0
checked=0
while read -r path package _; do
  [ -n "$path" ] || continue
  checked=$((checked + 1))
  if [ ! -e "$root$path" ]; then
    log "FAILED: $path is missing on a fresh machine (it comes with the Debian package '$package': add it to hack/apt-packages.txt)"
    problems=$((problems + 1))
    continue
  fi
  owner=$(chroot "$root" dpkg -S "$path" 2>/dev/null | cut -d: -f1 | tr ',' '\n' | tr -d ' ' | sort -u | tr '\n' ' ')
  case " $owner " in
    *" $package "*) ;;
    *) log "FAILED: $path belongs to '${owner% }', not '$package' (fix hack/required-files.txt)"; problems=$((problems + 1)) ;;
  esac
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/required-files.txt")

mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/apt-packages.txt" | awk '{print $1}')
for package in "${packages[@]}"; do
  chroot "$root" dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || { log "FAILED: package $package is not installed in the rootfs"; problems=$((problems + 1)); }
done

# The machine image's toolchains (not Debian packages on this kind of machine).
python3 -c 'import ensurepip, venv' 2>/dev/null || { log "FAILED: python3 with venv/ensurepip is missing"; problems=$((problems + 1)); }
command -v go >/dev/null || { log "FAILED: go is missing (the control plane and Helm are built with it)"; problems=$((problems + 1)); }

if [ "$problems" -gt 0 ]; then
  log "FAILED: $problems problem(s)"
  exit 1
fi
log "ok: ${#packages[@]} Debian packages installed by name in a clean bookworm rootfs; $checked required files present, each from its package; python3 (venv) and $(go version | awk '{print $3}') on the host"
