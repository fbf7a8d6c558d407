#!/usr/bin/env bash
# The Kaiban Board assets for the dashboard (cached: skipped when up to date).
set -euo pipefail
exec bash "$(cd "$(dirname "$0")/.." && pwd)/build-kaiban-board.sh"
