#!/usr/bin/env bash
# The one test command: set up what is missing, then run every test layer
# (unit, real git, real Podman, the local control plane, real Chromium) and the static checks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
bash "$here/setup.sh"
cd "$repo"
export CONTAINERS_CONF="$repo/hack/containers.conf"
export PATH="$repo/hack/bin:$repo/.venv/bin:$PATH"
mkdir -p .artifacts
echo "==> ruff" >&2
.venv/bin/ruff check operator tests bench hack
echo "==> mypy (strict, the package)" >&2
.venv/bin/mypy
echo "==> sprintctl crds --check" >&2
.venv/bin/sprintctl crds --check
echo "==> pytest" >&2
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
