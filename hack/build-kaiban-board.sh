#!/usr/bin/env bash
# Build the real Kaiban Board (npm kaiban-board, pinned in web/kaiban-app/package-lock.json) into
# operator/sprint_orchestrator/web/static/kaiban/{app.js,app.css}, served by `sprintctl dashboard` at
# /kaiban/{sprint_id}, and the board's diff view (review.js, highlight.js) into review.{js,css}.
# Skipped when the sources and the lock file are unchanged since the last build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
app="$here/../operator/sprint_orchestrator/web/kaiban-app"
out="$app/../static/kaiban"

command -v npm >/dev/null || { echo "npm is missing: run hack/setup.sh (it installs nodejs and npm)" >&2; exit 1; }
cd "$app"
stamp=$(cat package.json package-lock.json .npmrc main.jsx review.js build.mjs empty.js | sha256sum | cut -c1-16)
if [ -f "$out/app.js" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "kaiban board: up to date ($out)" >&2
  exit 0
fi
lock_stamp=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.lock-stamp 2>/dev/null)" != "$lock_stamp" ]; then
  # Install scripts are not needed: esbuild's binary comes in its platform package.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$lock_stamp" > node_modules/.lock-stamp
fi
node build.mjs
echo "$stamp" > "$out/.stamp"
echo "kaiban board: built $out/app.js" >&2
