#!/usr/bin/env bash
# Helm for the chart tests (helm lint / helm template): built from its Go module, cached.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/build-helm.sh" >/dev/null
