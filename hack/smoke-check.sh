#!/usr/bin/env bash
# hack/smoke-check.sh — prove that what hack/setup.sh set up works, the way the project uses it:
#   1. a trivial hardened task container through the operator's own Podman adapter (`sprintctl doctor`:
#      no network, capabilities dropped, read-only root, limits and the --init process, catatonit);
#   2. the local control plane starts and answers /readyz, and stops leaving nothing behind;
#   3. Debian's Chromium renders a page headless (the board's browser tests use it).
# Each failure is one line naming what is missing and how to get it; exit 1 if any failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
export PATH="$repo/hack/bin:$repo/.venv/bin:$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "smoke-check: FAILED: $*" >&2; failed=1; }

if out=$(sprintctl doctor --skip-keys --state-dir "$tmp/doctor" 2>&1); then
  echo "smoke-check: a hardened task container runs (podman $(podman version --format '{{.Client.Version}}'), runc)"
else
  fail "a hardened task container does not run: $(echo "$out" | tail -n 1)"
fi

if out=$("$here/cluster" up --state-dir "$tmp/cluster" 2>&1); then
  echo "smoke-check: the local control plane answers ($(echo "$out" | tail -n 1))"
else
  fail "the local control plane did not start: $(echo "$out" | tail -n 1) (run hack/build-control-plane.sh)"
fi
"$here/cluster" down --state-dir "$tmp/cluster" >/dev/null 2>&1 || fail "hack/cluster down failed"

if out=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --dump-dom 'data:text/html,<p id=ok>smoke-ok</p>' 2>/dev/null) && [[ "$out" == *smoke-ok* ]]; then
  echo "smoke-check: Chromium renders a page ($(chromium --version 2>/dev/null))"
else
  fail "Chromium does not render a page headless (apt-get install chromium)"
fi
exit "$failed"
